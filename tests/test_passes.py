"""The two kinds of pass: step by step (every plan's first pass, and large plans for a while)
and compiled to straight-line code. They are two renderings of one plan, so they must train to
the same bits on every network; these tests hold them to it on every spec the project ships.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SHIPPED_SPECS, same_both_ways, sample_data, step_by_step

import graphnet

SPECS = [*SHIPPED_SPECS, ROOT / "bench" / "w4_deep.yaml"]


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_compiled_and_step_by_step_passes_agree_on_every_shipped_spec(path: Path) -> None:
    """Whichever pass a plan runs, a spec trains to the same bits."""
    spec = graphnet.load_spec(path)
    same_both_ways(spec, sample_data(spec))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_a_run_trains_to_the_same_bits_with_either_pass(path: Path, tmp_path: Path) -> None:
    """A whole `graphnet run` of two epochs (optimizer, shuffling, dropout) gives the same
    weights.npz whichever pass its plan runs."""
    if path.parent.name == "bench":
        pytest.skip("the bench specs' data are made by bench/run.py")
    spec = graphnet.load_spec(path, {"train.epochs": 2})
    graphnet.train(spec, tmp_path / "compiled")
    with step_by_step():
        graphnet.train(spec, tmp_path / "looped")
    with (
        np.load(tmp_path / "compiled" / "weights.npz") as a,
        np.load(tmp_path / "looped" / "weights.npz") as b,
    ):
        assert a.files == b.files
        for key in a.files:
            assert np.array_equal(a[key], b[key]), key
