"""A run killed at any instant loses nothing: `--resume` continues to the same bits as a run that
never stopped, with every epoch exactly once in metrics.csv.

The fault-injection test kills the run (an exception no handler catches, as SIGKILL would) at
every file write of an epoch — spec, metrics rows, checkpoint, weights, and inside the atomic
writer just before its rename — and resumes. The soak test (`pytest -m soak`) sends SIGKILL,
SIGTERM and SIGINT at random instants to real processes, many times each.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import plain_env

import graphnet
from graphnet import files, runfolder

SPEC = {
    "name": "soak",
    "seed": 7,
    "data": {"source": "synthetic", "function": "product", "samples": 96, "validation": 0.25},
    "inputs": {"x": {"shape": [2]}, "y": {"shape": [1]}},
    "nodes": [
        {"name": "hidden", "type": "dense", "inputs": ["x"], "units": 8},
        {"name": "act", "type": "relu", "inputs": ["hidden"]},
        {"name": "drop", "type": "dropout", "inputs": ["act"], "rate": 0.2},
        {"name": "out", "type": "dense", "inputs": ["drop"], "units": 1},
    ],
    "loss": {"type": "mse", "inputs": ["out", "y"]},
    "train": {
        "epochs": 4,
        "batch_size": 16,
        "checkpoint_every": 0,
        "optimizer": {"type": "adam", "lr": 0.01},
        "metrics": ["mae"],
    },
}


class Killed(BaseException):
    """Stands for SIGKILL: no `except Exception` of the engine sees it, no cleanup runs."""


def write(folder: Path, spec: dict[str, Any] | None = None) -> Path:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec or SPEC, sort_keys=False), encoding="utf-8")
    return path


def folder_state(run: Path) -> tuple[dict[str, bytes], list[str]]:
    """The weights' bytes and metrics.csv's rows without the seconds column."""
    with np.load(run / "weights.npz") as weights:
        arrays = {k: weights[k].tobytes() for k in weights.files}
    rows = (run / "metrics.csv").read_text(encoding="utf-8").splitlines()
    return arrays, [",".join(row.split(",")[:-1]) for row in rows]


WRITES = [
    (runfolder.RunFolder, "write_spec"),
    (runfolder.RunFolder, "append_metrics"),
    (runfolder.RunFolder, "write_checkpoint"),
    (runfolder.RunFolder, "write_weights"),
    (files.os, "replace"),  # inside the atomic writer: the new file is complete, not yet renamed
]


@pytest.mark.parametrize(("owner", "name"), WRITES, ids=[name for _, name in WRITES])
def test_a_kill_at_every_write_resumes_to_the_same_bits(tmp_path, monkeypatch, owner, name):
    """For each write of a run and each time it happens, a run killed right then resumes (once
    or repeatedly) to the bits and metrics rows of the run that never stopped."""
    path = write(tmp_path)
    graphnet.train(graphnet.load_spec(path), tmp_path / "whole")
    expected = folder_state(tmp_path / "whole")
    original = getattr(owner, name)
    calls = {"n": 0}

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    graphnet.train(graphnet.load_spec(path), tmp_path / "counted")
    total = calls["n"]
    assert total >= 1
    for kill_at in range(1, total + 1):
        run = tmp_path / f"killed-{kill_at}"
        calls["n"] = 0

        def dying(*args: Any, _at: int = kill_at, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == _at:
                raise Killed
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, dying)
        with pytest.raises(Killed):
            graphnet.train(graphnet.load_spec(path), run)
        monkeypatch.setattr(owner, name, original)
        graphnet.train(graphnet.load_spec(path), run, resume=True)
        assert folder_state(run) == expected, f"killed at {name} #{kill_at}"


def _soak_spec(folder: Path) -> Path:
    spec = {**SPEC, "train": {**SPEC["train"], "epochs": 60, "batch_size": 8}}
    spec["data"] = {**SPEC["data"], "samples": 400}
    return write(folder, spec)


@pytest.mark.soak
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=str)
def test_kill_at_random_instants_and_resume(tmp_path, sig):
    """30 runs per signal, each interrupted at a random instant (more than once where it gets
    the chance) and resumed until it completes: all end with the bits of the uninterrupted run,
    every epoch once in metrics.csv."""
    path = _soak_spec(tmp_path)
    graphnet.train(graphnet.load_spec(path), tmp_path / "whole")
    expected = folder_state(tmp_path / "whole")
    started = time.perf_counter()
    graphnet.train(graphnet.load_spec(path), tmp_path / "timed")
    duration = time.perf_counter() - started
    rng = random.Random(int(sig))
    identical = 0
    interruptions = 0
    for trial in range(30):
        run = tmp_path / f"trial-{trial}"
        resume: list[str] = []
        while True:
            command = [sys.executable, "-m", "graphnet", "run", str(path), "--out", str(run), "-q"]
            process = subprocess.Popen(
                [*command, *resume],
                env=plain_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            time.sleep(rng.uniform(0.3, 0.6 + 2 * duration))  # start-up, then anywhere in the run
            if process.poll() is None:
                os.kill(process.pid, sig)
                interruptions += 1
            _, err = process.communicate(timeout=300)
            if process.returncode == 0:
                break
            # 130/143: stopped at a clean point; -sig: killed before its handlers were set
            assert process.returncode in (-sig, -signal.SIGKILL, 130, 143), err.decode()
            resume = ["--resume"] if run.is_dir() and (run / "spec.yaml").exists() else []
        identical += folder_state(run) == expected
    print(
        f"\n{signal.Signals(sig).name}: {identical}/30 identical after {interruptions} interruptions"
    )
    assert identical == 30
