"""Specs, data and run helpers shared by the tests of training features: schedules, early
stopping, gradient clipping and metrics accumulated over an epoch."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from click.testing import CliRunner, Result

from graphnet.cli import cli

LINEAR = [{"name": "out", "type": "dense", "inputs": ["x"], "units": 1, "init": "zeros"}]
MLP = [
    {"name": "hidden", "type": "dense", "inputs": ["x"], "units": 32},
    {"name": "act", "type": "tanh", "inputs": ["hidden"]},
    {"name": "out", "type": "dense", "inputs": ["act"], "units": 1},
]


def linear_data(directory: Path, n: int = 40, features: int = 3, seed: int = 0) -> np.ndarray:
    """``data.npz``: x ~ N(0, 1), y = x·w + 0.5 + noise; returns x and y side by side."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features))
    y = x @ np.arange(1.0, features + 1) + 0.5 + 0.1 * rng.normal(size=n)
    np.savez(directory / "data.npz", x=x, y=y.reshape(n, 1))
    return np.column_stack([x, y])


def write_spec(
    directory: Path,
    nodes: list[dict[str, Any]] | None = None,
    validation: float = 0.0,
    features: int = 3,
    **train: Any,
) -> Path:
    """A regression spec on ``data.npz`` (MSE, full-batch SGD by default); ``train`` overrides."""
    spec = {
        "data": {"source": "npz", "path": "data.npz", "validation": validation},
        "inputs": {"x": {"shape": [features]}, "y": {"shape": [1]}},
        "nodes": nodes or LINEAR,
        "loss": {"type": "mse", "inputs": ["out", "y"]},
        "train": {
            "epochs": 10,
            "batch_size": None,
            "shuffle": False,
            "optimizer": {"type": "sgd", "lr": 0.05},
            "checkpoint_every": 0,
            **train,
        },
    }
    path = directory / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def run(spec: Path, out: Path, *args: str) -> Result:
    """``graphnet run SPEC --out OUT --quiet ARGS...`` through click's runner."""
    return CliRunner().invoke(cli, ["run", str(spec), "--out", str(out), "--quiet", *args])


def rows(run_dir: Path) -> list[dict[str, float]]:
    """The rows of a run's ``metrics.csv`` as floats."""
    with (run_dir / "metrics.csv").open(encoding="utf-8") as file:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(file)]


def arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}
