"""The two kinds of pass: step by step (every plan's first pass, and large plans for a while)
and compiled to straight-line code. They are two renderings of one plan, so they must train to
the same bits on every network; these tests hold them to it on every spec the project ships.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import graphnet
from graphnet import plan as plan_module

ROOT = Path(__file__).resolve().parents[1]
SPECS = [*sorted((ROOT / "specs").glob("*.yaml")), ROOT / "bench" / "w4_deep.yaml"]


@contextmanager
def step_by_step() -> Iterator[None]:
    """Networks built inside never compile their plans."""
    saved = plan_module.COMPILE_NODES, plan_module.COMPILE_AFTER
    plan_module.COMPILE_NODES, plan_module.COMPILE_AFTER = 0, 10**9
    try:
        yield
    finally:
        plan_module.COMPILE_NODES, plan_module.COMPILE_AFTER = saved


def train_steps(spec: graphnet.Spec, arrays: dict[str, np.ndarray], steps: int) -> list[object]:
    """Losses, gradients and weights of ``steps`` plain gradient steps on ``arrays``."""
    network = graphnet.build(spec)
    network.params.flat *= 0.1  # 100 residual blocks of glorot weights overflow (bench/w4)
    seen: list[object] = []
    for _ in range(steps):
        values = network.values(arrays, list(network.graph.inputs))
        seen.append(network.train_step(values))
        seen.append(network.grads.flat.copy())
        network.params.flat -= 0.01 * network.grads.flat
        seen.append(network.params.flat.copy())
    return seen


def same_both_ways(spec: graphnet.Spec, arrays: dict[str, np.ndarray], steps: int = 3) -> None:
    """Compiled and step-by-step passes give bit-identical losses, gradients and weights."""
    compiled = train_steps(spec, arrays, steps)
    with step_by_step():
        looped = train_steps(spec, arrays, steps)
    for i, (a, b) in enumerate(zip(compiled, looped, strict=True)):
        assert np.array_equal(a, b, equal_nan=True), f"item {i} of the steps differs"  # type: ignore[arg-type]


def sample_data(spec: graphnet.Spec, n: int = 6) -> dict[str, np.ndarray]:
    """Inputs of the spec's shapes holding 0s and 1s: valid class ids, targets and features."""
    rng = np.random.default_rng(0)
    return {
        name: rng.integers(0, 2, (n, *s.shape)).astype(np.float64)
        for name, s in spec.inputs.items()
    }


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
