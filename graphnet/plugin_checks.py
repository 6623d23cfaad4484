"""The plugin author's checks for optimizers, metrics, data sources and schedules (exported by
:mod:`graphnet.testing`, beside ``check_layer`` and ``check_loss``).

Each runs a plugin the way the engine will and raises ``AssertionError`` saying what was
expected and what was got.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from graphnet.base import Array, DataSource, Metric, Optimizer, Schedule

SHAPES = {"layer/W": (3, 2), "layer/b": (2,)}


def _params(rng: np.random.Generator, dtype: Any) -> dict[str, Array]:
    return {key: rng.standard_normal(shape).astype(dtype) for key, shape in SHAPES.items()}


def _step(
    optimizer: Optimizer, params: dict[str, Array], grads: dict[str, Array], state: Any
) -> None:
    arrays = dict(params)
    given = {k: g.copy() for k, g in grads.items()}
    optimizer.step(params, grads, state)
    for key, array in arrays.items():
        if params[key] is not array:
            raise AssertionError(
                f"step replaced params[{key!r}] instead of updating it in place "
                "(write `p -= ...` or `p[...] = ...`, never `params[key] = ...`)"
            )
    for key, g in grads.items():
        if not np.array_equal(g, given[key]):
            raise AssertionError(f"step changed the gradient {key!r}; gradients are read-only")


def check_optimizer(
    optimizer_class: type[Optimizer], options: Mapping[str, Any] | None = None, seed: int = 0
) -> None:
    """Check an optimizer the way the engine uses it: ``init_state`` returns a dict of arrays;
    ``step`` updates every parameter in place (the arrays handed over are the ones changed, and
    a nonzero gradient moves them); gradients are left alone; a step taken from a copy of the
    parameters and state (a resumed run) gives the same bits; float32 stays float32."""
    for dtype in (np.float64, np.float32):
        rng = np.random.default_rng(seed)
        params = _params(rng, dtype)
        optimizer = optimizer_class(options)
        state = optimizer.init_state(params)
        if not isinstance(state, dict) or not all(
            isinstance(v, np.ndarray) for v in state.values()
        ):
            raise AssertionError(
                f"init_state must return a dict of numpy arrays (it checkpoints), got {state!r}"
            )
        before = {k: v.copy() for k, v in params.items()}
        grads = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()}
        _step(optimizer, params, grads, state)
        if all(np.array_equal(before[k], params[k]) for k in params):
            raise AssertionError("a step with nonzero gradients changed no parameter")
        for key, array in params.items():
            if array.dtype != dtype:
                raise AssertionError(f"step made {key!r} {array.dtype}, expected {np.dtype(dtype)}")
        resumed = {k: v.copy() for k, v in params.items()}
        resumed_state = copy.deepcopy(state)
        grads = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()}
        _step(optimizer, params, grads, state)
        _step(optimizer_class(options), resumed, grads, resumed_state)
        for key in params:
            if params[key].tobytes() != resumed[key].tobytes():
                raise AssertionError(
                    f"a step from a copy of the parameters and state (a resumed run) gave "
                    f"{key!r} = {resumed[key]!r}, the uninterrupted step {params[key]!r}"
                )


def check_metric(
    metric_class: type[Metric],
    prediction: Array,
    target: Array,
    options: Mapping[str, Any] | None = None,
    batch: int = 3,
) -> float:
    """Check a metric the way the engine uses it, on ``prediction`` and ``target`` (arrays with
    samples on axis 0): over batches of ``batch`` samples (and of 1), the engine's way of
    combining them — ``reset``/``update``/``result`` for an accumulating metric, the
    size-weighted mean of ``compute`` otherwise — gives the value of the whole set. Returns it."""
    metric = metric_class(options)
    whole = _combined(metric, prediction, target, len(prediction))
    for size in (batch, 1):
        got = _combined(metric, prediction, target, size)
        if not (got == whole or math.isclose(got, whole, rel_tol=1e-9, abs_tol=1e-12)):
            raise AssertionError(
                f"over batches of {size} the metric is {got!r}, over the whole set {whole!r}"
                + (
                    ""
                    if metric.accumulates
                    else "; a metric that is not a mean over samples must accumulate "
                    "(reset/update/result)"
                )
            )
    return whole


def _combined(metric: Metric, prediction: Array, target: Array, size: int) -> float:
    n = len(prediction)
    if metric.accumulates:
        metric.reset()
        for start in range(0, n, size):
            metric.update(prediction[start : start + size], target[start : start + size])
        value = metric.result()
    else:
        value = (
            sum(
                float(metric.compute(prediction[s : s + size], target[s : s + size]))
                * len(prediction[s : s + size])
                for s in range(0, n, size)
            )
            / n
        )
    if not isinstance(value, float | int | np.floating | np.integer):
        raise AssertionError(f"the metric returned {type(value).__name__}, not a number")
    return float(value)


def check_data_source(
    source_class: type[DataSource],
    options: Mapping[str, Any] | None = None,
    base_dir: str | Path = ".",
    seed: int = 0,
) -> dict[str, Array]:
    """Check a data source the way the engine uses it: ``load`` returns numeric (never object)
    arrays keyed by input name, with one number of samples on axis 0, and the same arrays again
    from a generator of the same seed. Returns them."""
    first = source_class(options).load(Path(base_dir), np.random.default_rng(seed))
    again = source_class(options).load(Path(base_dir), np.random.default_rng(seed))
    if not isinstance(first, dict) or not first:
        raise AssertionError(f"load must return a non-empty dict of arrays, got {first!r}")
    samples = set()
    for name, array in first.items():
        if not isinstance(name, str):
            raise AssertionError(f"keys are input names (str), got {name!r}")
        array = np.asarray(array)
        if array.dtype.hasobject or not (
            np.issubdtype(array.dtype, np.number) or array.dtype == bool
        ):
            raise AssertionError(f"array {name!r} is {array.dtype}, expected numbers")
        if array.ndim < 1:
            raise AssertionError(f"array {name!r} has no sample axis")
        samples.add(len(array))
        if not np.array_equal(array, np.asarray(again[name]), equal_nan=True):
            raise AssertionError(f"array {name!r} differs between two loads with one seed")
    if len(samples) != 1:
        raise AssertionError(f"the arrays have different numbers of samples: {sorted(samples)}")
    return {k: np.asarray(v) for k, v in first.items()}


def check_schedule(
    schedule_class: type[Schedule],
    options: Mapping[str, Any] | None = None,
    base_lr: float = 0.1,
    history: Sequence[Mapping[str, Any]] | None = None,
) -> list[float]:
    """Check a schedule the way the engine uses it: for every epoch of ``history`` (default:
    20 epochs of a falling, then flat loss), ``lr(epoch, base_lr, history[:epoch - 1])`` is a
    finite number ≥ 0, the same when asked again (a schedule keeps no state: a resumed run gets
    the same rates), and the history is left as it was. Returns the rates."""
    if history is None:
        history = [
            {"epoch": e, "loss": max(1.0 / e, 0.2), "val_loss": max(1.0 / e, 0.25)}
            for e in range(1, 21)
        ]
    saved = copy.deepcopy(list(history))
    schedule = schedule_class(options)
    rates = []
    for epoch in range(1, len(history) + 1):
        past = list(history[: epoch - 1])
        lr = schedule.lr(epoch, base_lr, past)
        if not isinstance(lr, float | int) or not math.isfinite(lr) or lr < 0:
            raise AssertionError(f"lr of epoch {epoch} is {lr!r}, expected a finite number ≥ 0")
        again = schedule_class(options).lr(epoch, base_lr, past)
        if again != lr:
            raise AssertionError(
                f"lr of epoch {epoch} is {lr!r}, asked again of a new instance {again!r}: a "
                "schedule must be a function of (epoch, base_lr, history)"
            )
        rates.append(float(lr))
    if list(history) != saved:
        raise AssertionError("lr changed the history it was given")
    return rates
