"""Checks a plugin author runs in their own test suite: ``check_layer``, ``check_loss``,
``check_optimizer``, ``check_metric``, ``check_data_source`` and ``check_schedule`` (the last
four live in :mod:`graphnet.plugin_checks`).

``check_layer`` and ``check_loss`` check a plugin the way the engine will use it: the output shape against ``output_shape``
(or ``check_shapes``), gradients of every input and parameter against central finite
differences in float64, the dtype kept in float32, no input, parameter or incoming gradient
mutated, and a deterministic forward pass. A failure raises ``AssertionError`` naming the input
or parameter, the index and both values. A layer's declared ``buffers`` (state such as running
statistics, which ``forward`` may update while training) take no gradient and are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from graphnet.base import Array, Layer, Loss, Shape
from graphnet.plugin_checks import (
    check_data_source,
    check_metric,
    check_optimizer,
    check_schedule,
)

__all__ = [
    "check_data_source",
    "check_layer",
    "check_loss",
    "check_metric",
    "check_network",
    "check_optimizer",
    "check_schedule",
]

EPS = 1e-6
RTOL = 1e-5
ATOL = 1e-7
MAX_ELEMENTS = 64  # elements checked per array; larger arrays are sampled


def _indices(shape: tuple[int, ...], rng: np.random.Generator) -> list[tuple[int, ...]]:
    everything = list(np.ndindex(*shape))
    if len(everything) <= MAX_ELEMENTS:
        return everything
    chosen = rng.choice(len(everything), MAX_ELEMENTS, replace=False)
    return [everything[i] for i in sorted(chosen)]


def _compare(
    what: str, analytic: Array, f: Callable[[], float], array: Array, rng: np.random.Generator
) -> float:
    """Central differences of ``f`` over elements of ``array`` against ``analytic``."""
    worst = 0.0
    for index in _indices(array.shape, rng):
        saved = array[index]
        array[index] = saved + EPS
        up = f()
        array[index] = saved - EPS
        down = f()
        array[index] = saved
        numeric = (up - down) / (2 * EPS)
        given = float(analytic[index])
        error = abs(given - numeric)
        scale = max(abs(given), abs(numeric))
        if error > ATOL + RTOL * scale:
            raise AssertionError(
                f"gradient of {what} at index {index}: backward gives {given!r}, "
                f"finite differences give {numeric!r} (absolute error {error:.3g})"
            )
        worst = max(worst, error / max(scale, 1e-12))
    return worst


def _same(what: str, before: Array, after: Array) -> None:
    if not np.array_equal(before, after, equal_nan=True):
        raise AssertionError(
            f"{what} was modified in place; plugins must not mutate their arguments"
        )


def _dtype(what: str, array: Any, dtype: np.dtype[Any]) -> None:
    if getattr(array, "dtype", None) != dtype:
        raise AssertionError(
            f"{what} is {getattr(array, 'dtype', type(array).__name__)}, expected {dtype}"
        )


def _inputs(
    inputs: Sequence[Array] | None, shapes: list[Shape], batch: int, rng: np.random.Generator
) -> list[Array]:
    """The given inputs in float64, or standard-normal ones of ``shapes`` with a batch axis."""
    if inputs is not None:
        return [np.array(x, dtype=np.float64) for x in inputs]
    return [rng.standard_normal((batch, *s)) for s in shapes]


def check_layer(
    layer_class: type[Layer],
    options: Mapping[str, Any] | None,
    input_shapes: Sequence[Sequence[int]],
    *,
    batch: int = 3,
    inputs: Sequence[Array] | None = None,
    seed: int = 0,
) -> float:
    """Check a layer's shapes, gradients, dtypes and purity; return the worst relative error.

    ``input_shapes`` are per-sample shapes; ``inputs`` (with the batch axis) replace the random
    standard-normal inputs where a layer needs particular values.
    """
    rng = np.random.default_rng(seed)
    shapes = [tuple(int(d) for d in s) for s in input_shapes]
    layer = layer_class(options or {})
    expected = tuple(int(d) for d in layer.output_shape(shapes))
    xs = _inputs(inputs, shapes, batch, rng)
    params = {k: np.array(v, dtype=np.float64) for k, v in layer.init_params(shapes, rng).items()}
    buffers = set(getattr(layer, "buffers", ()))
    params = {
        k: v if k in buffers else v + 0.1 * rng.standard_normal(v.shape) for k, v in params.items()
    }
    name = layer_class.type or layer_class.__name__
    worst = check_layer_on(layer, xs, params, expected, name=name, seed=seed)
    _check_float32_layer(layer, name, xs, params, seed)
    return worst


def check_layer_on(
    layer: Layer,
    xs: Sequence[Array],
    params: Mapping[str, Array],
    expected: Sequence[int],
    *,
    name: str,
    seed: int = 0,
) -> float:
    """The checks of :func:`check_layer` on given float64 inputs and parameters."""
    rng = np.random.default_rng(seed + 2)
    xs = list(xs)
    params = dict(params)
    buffers = set(getattr(layer, "buffers", ()))
    trainable = {k: v for k, v in params.items() if k not in buffers}

    def forward(training: bool = True) -> tuple[Array, Any]:
        layer.rng = np.random.default_rng(seed + 1)  # the same dropout mask on every call
        return layer.forward(params, xs, training)

    originals = [x.copy() for x in xs], {k: v.copy() for k, v in trainable.items()}

    def unchanged(after: str) -> None:
        for i, x in enumerate(xs):
            _same(f"{name}: input {i} ({after})", originals[0][i], x)
        for k, v in trainable.items():
            _same(f"{name}: parameter {k!r} ({after})", originals[1][k], v)

    out, cache = forward()
    unchanged("in forward")
    if out.shape != (len(xs[0]), *expected):
        raise AssertionError(
            f"{name}: forward gives shape {list(out.shape)}, output_shape says {list(expected)} (plus the batch axis)"
        )
    _dtype(f"{name}: forward output", out, np.dtype(np.float64))
    again, _ = forward()
    if not np.array_equal(out, again, equal_nan=True):
        raise AssertionError(f"{name}: two forward passes on the same inputs differ")
    grad = rng.standard_normal(out.shape)
    grad_copy = grad.copy()
    in_grads, p_grads = layer.backward(params, cache, grad)
    unchanged("in backward")
    _same(f"{name}: the gradient passed to backward", grad_copy, grad)
    if len(in_grads) != len(xs):
        raise AssertionError(
            f"{name}: backward returns {len(in_grads)} input gradients for {len(xs)} inputs"
        )
    if set(p_grads) != set(trainable):
        raise AssertionError(
            f"{name}: backward returns gradients for {sorted(p_grads)}, the parameters are {sorted(trainable)}"
        )

    def objective() -> float:
        return float(np.sum(forward()[0] * grad))

    worst = 0.0
    for i, (x, g) in enumerate(zip(xs, in_grads, strict=True)):
        if g is None:
            continue
        _shape(f"{name}: gradient of input {i}", g, x)
        worst = max(worst, _compare(f"{name} input {i}", np.asarray(g), objective, x, rng))
    for k, v in trainable.items():
        _shape(f"{name}: gradient of parameter {k!r}", p_grads[k], v)
        worst = max(
            worst, _compare(f"{name} parameter {k!r}", np.asarray(p_grads[k]), objective, v, rng)
        )
    return worst


def _shape(what: str, g: Any, like: Array) -> None:
    if getattr(g, "shape", None) != like.shape:
        raise AssertionError(
            f"{what} has shape {list(getattr(g, 'shape', ()))}, expected {list(like.shape)}"
        )


def _check_float32_layer(
    layer: Layer, name: str, xs: list[Array], params: dict[str, Array], seed: int
) -> None:
    f32 = np.dtype(np.float32)
    xs32 = [x.astype(f32) for x in xs]
    params32 = {k: v.astype(f32) for k, v in params.items()}
    layer.rng = np.random.default_rng(seed + 1)
    out, cache = layer.forward(params32, xs32, True)
    _dtype(f"{name}: float32 forward output", out, f32)
    in_grads, p_grads = layer.backward(params32, cache, np.ones_like(out))
    for i, g in enumerate(in_grads):
        if g is not None:
            _dtype(f"{name}: float32 gradient of input {i}", g, f32)
    for k, g in p_grads.items():
        _dtype(f"{name}: float32 gradient of parameter {k!r}", g, f32)


def check_loss(
    loss_class: type[Loss],
    options: Mapping[str, Any] | None,
    input_shapes: Sequence[Sequence[int]],
    *,
    batch: int = 3,
    inputs: Sequence[Array] | None = None,
    seed: int = 0,
) -> float:
    """Check a loss's gradients, dtypes and purity; return the worst relative error.

    ``inputs`` replace the random inputs (class-id labels, say); an input whose gradient
    ``backward`` gives as ``None`` is not differentiated.
    """
    rng = np.random.default_rng(seed)
    shapes = [tuple(int(d) for d in s) for s in input_shapes]
    loss = loss_class(options or {})
    loss.check_shapes(shapes)
    xs = _inputs(inputs, shapes, batch, rng)
    name = loss_class.type or loss_class.__name__
    worst = check_loss_on(loss, xs, name=name, seed=seed)
    f32 = np.dtype(np.float32)
    value32, cache32 = loss.forward([x.astype(f32) for x in xs])
    _dtype(f"{name}: float32 loss value", np.asarray(value32), f32)
    for i, g in enumerate(loss.backward(cache32)):
        if g is not None:
            _dtype(f"{name}: float32 gradient of input {i}", g, f32)
    return worst


def check_loss_on(loss: Loss, xs: Sequence[Array], *, name: str, seed: int = 0) -> float:
    """The checks of :func:`check_loss` on given float64 inputs."""
    rng = np.random.default_rng(seed + 2)
    xs = list(xs)
    value, cache = loss.forward(xs)
    if np.ndim(value) != 0:
        raise AssertionError(
            f"{name}: forward gives a value of shape {list(np.shape(value))}, expected a scalar"
        )
    again, _ = loss.forward(xs)
    if float(value) != float(again):
        raise AssertionError(f"{name}: two forward passes on the same inputs differ")
    copies = [x.copy() for x in xs]
    grads = list(loss.backward(cache))
    for i, x in enumerate(xs):
        _same(f"{name}: input {i}", copies[i], x)
    if len(grads) != len(xs):
        raise AssertionError(
            f"{name}: backward returns {len(grads)} gradients for {len(xs)} inputs"
        )

    def objective() -> float:
        return float(loss.forward(xs)[0])

    worst = 0.0
    for i, (x, g) in enumerate(zip(xs, grads, strict=True)):
        if g is None:
            continue
        _shape(f"{name}: gradient of input {i}", g, x)
        worst = max(worst, _compare(f"{name} input {i}", np.asarray(g), objective, x, rng))
    return worst


def check_network(
    network: Any, inputs: Mapping[str, Array], seed: int = 0
) -> list[tuple[str, str, float | AssertionError]]:
    """Check every node and loss of a float64 network at the values ``inputs`` lead to.

    Returns one ``(name, type, worst relative error or the AssertionError)`` per node and loss,
    in topological order. ``graphnet gradcheck`` prints them.
    """
    plan = network.plan([ref for loss in network.graph.losses for ref in loss.inputs])
    values = network.values(inputs, plan.inputs)
    network.run(plan, values, None, training=False)
    results: list[tuple[str, str, float | AssertionError]] = []
    types = {node.name: node.type for node in network.graph.nodes}
    for step in plan.steps:
        xs = [np.array(values[s], dtype=np.float64) for s in step.in_slots]
        params = {k: v.astype(np.float64) for k, v in step.params.items()}
        try:
            worst: float | AssertionError = check_layer_on(
                step.layer, xs, params, step.shape, name=step.name, seed=seed
            )
        except AssertionError as error:
            worst = error
        except Exception as error:  # the plugin itself failed: name it as a run would
            raise step.caller.failed("gradient check (forward/backward)", error) from error
        results.append((step.name, types[step.name], worst))
    for i, loss in enumerate(network.graph.losses):
        xs = [np.array(values[network.slots[ref]], dtype=np.float64) for ref in loss.inputs]
        try:
            worst = check_loss_on(network.loss_plugins[i], xs, name=f"loss[{i}]", seed=seed)
        except AssertionError as error:
            worst = error
        except Exception as error:
            raise loss.caller.failed("gradient check (forward/backward)", error) from error
        results.append((f"loss[{i}]", loss.type, worst))
    return results
