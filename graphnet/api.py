"""The Python API: ``load_spec``, ``build``, ``load_run`` and ``train``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from graphnet.errors import DataError
from graphnet.executor import Network
from graphnet.runfolder import SPEC, WEIGHTS, RunFolder
from graphnet.spec import load_spec
from graphnet.train import build, train


def load_run(run_dir: str | Path, plugins: Sequence[str] = ()) -> Network:
    """The trained network of a run folder: its ``spec.yaml`` with its ``weights.npz``."""
    folder = RunFolder(run_dir)
    if not folder.file(SPEC).is_file():
        raise DataError(f"not a run folder: it has no {SPEC}", str(run_dir))
    if not folder.file(WEIGHTS).is_file():
        raise DataError(f"the run has no {WEIGHTS} (did it finish?)", str(run_dir))
    network = build(load_spec(folder.file(SPEC), plugins=plugins))
    network.load_weights(folder.file(WEIGHTS))
    return network


__all__ = ["build", "load_run", "load_spec", "train"]
