"""One table over the registry: every registered layer and loss passes graphnet.testing's checks.

A new built-in (or an installed third-party plugin) is covered the moment it is registered: a
type without an entry below is checked with no options and per-sample inputs of shape [4] (two
of them where it takes any number), and a type that needs options fails until it gets an entry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from graphnet.registry import get_registry
from graphnet.testing import check_layer, check_loss

Example = tuple[dict[str, Any], list[tuple[int, ...]], list[Any] | None]

LAYER_EXAMPLES: dict[str, list[Example]] = {
    "dense": [
        ({"units": 3}, [(4,)], None),
        ({"units": 2, "bias": False}, [(2, 3)], None),
        ({"units": 3, "init": "uniform"}, [(5,)], None),
    ],
    "dropout": [({"rate": 0.5}, [(6,)], None), ({"rate": 0.0}, [(3,)], None)],
    "add": [({}, [(3,), (3,)], None), ({}, [(2, 2), (2, 2), (2, 2)], None)],
    "concat": [({}, [(2,), (3,)], None), ({}, [(2, 1), (2, 3), (2, 2)], None)],
    "softmax": [({}, [(4,)], None), ({}, [(2, 3)], None)],
    "multiply": [({}, [(3,), (3,)], None), ({}, [(2, 2), (2, 2), (2, 2)], None)],
    "leaky_relu": [({}, [(4,)], None), ({"slope": 0.2}, [(2, 3)], None)],
    "conv2d": [
        ({"filters": 2, "kernel": 3}, [(5, 5, 2)], None),
        ({"filters": 3, "kernel": [2, 3], "stride": 2, "padding": "same"}, [(5, 6, 2)], None),
        ({"filters": 2, "kernel": 3, "padding": "same"}, [(4, 4, 1)], None),
        ({"filters": 2, "kernel": 1, "bias": False, "init": "he_uniform"}, [(3, 3, 3)], None),
    ],
    "maxpool2d": [({}, [(4, 4, 2)], None), ({"pool": [3, 2], "stride": 1}, [(5, 4, 2)], None)],
    "avgpool2d": [({}, [(5, 4, 2)], None), ({"pool": 3, "stride": [1, 2]}, [(4, 5, 2)], None)],
    "global_avgpool2d": [({}, [(3, 4, 2)], None)],
    "flatten": [({}, [(2, 3, 2)], None)],
    "reshape": [({"shape": [3, -1]}, [(2, 3, 2)], None), ({"shape": [6]}, [(2, 3)], None)],
    "batchnorm": [({}, [(4,)], None), ({"momentum": 0.5}, [(3, 3, 2)], None)],
    "layernorm": [({}, [(4,)], None), ({"eps": 1e-3}, [(2, 5)], None)],
    "embedding": [({"vocab": 5, "units": 3}, [(4,)], [[[0, 4, 2, 2], [1, 1, 3, 0], [4, 0, 0, 2]]])],
}

_rng = np.random.default_rng(7)
LOSS_EXAMPLES: dict[str, list[Example]] = {
    "cross_entropy": [
        ({}, [(4,), (1,)], [_rng.standard_normal((5, 4)), [[0], [3], [1], [2], [3]]]),
        ({}, [(3,), (3,)], [_rng.standard_normal((4, 3)), np.eye(3)[[0, 2, 1, 1]]]),
        ({}, [(3,), (3,)], None),  # soft targets: the target gets a gradient too
    ],
    "bce": [({}, [(3,), (3,)], [_rng.standard_normal((4, 3)), _rng.random((4, 3))])],
}


def _cases(kind: str, table: dict[str, list[Example]]) -> list[Any]:
    cases = []
    for name, entry in sorted(get_registry().entries(kind).items()):
        default: Example = ({}, [(4,)] * (getattr(entry.cls, "arity", 1) or 2), None)
        for i, example in enumerate(table.get(name, [default])):
            cases.append(pytest.param(entry.cls, *example, id=f"{name}-{i}"))
    return cases


@pytest.mark.parametrize(("cls", "options", "shapes", "inputs"), _cases("layer", LAYER_EXAMPLES))
def test_layer_conforms(cls: Any, options: dict[str, Any], shapes: list[Any], inputs: Any) -> None:
    """Shapes, finite-difference gradients, float32 and purity of every registered layer."""
    worst = check_layer(cls, options, shapes, inputs=inputs)
    assert worst < 1e-5


@pytest.mark.parametrize(("cls", "options", "shapes", "inputs"), _cases("loss", LOSS_EXAMPLES))
def test_loss_conforms(cls: Any, options: dict[str, Any], shapes: list[Any], inputs: Any) -> None:
    """Finite-difference gradients, float32 and purity of every registered loss."""
    worst = check_loss(cls, options, shapes, inputs=inputs)
    assert worst < 1e-5


def test_check_layer_catches_a_wrong_gradient() -> None:
    """check_layer fails on a layer whose backward is off by 1%, naming parameter and index."""
    dense = get_registry().entries("layer")["dense"].cls

    class Off(dense):  # type: ignore[misc, valid-type]
        def backward(self, params: Any, cache: Any, grad: Any) -> Any:
            d_inputs, d_params = super().backward(params, cache, grad)
            return d_inputs, {**d_params, "b": d_params["b"] * 1.01}

    with pytest.raises(
        AssertionError,
        match=r"parameter 'b' at index \(\d+,\): backward gives .* finite differences give",
    ):
        check_layer(Off, {"units": 2}, [(3,)])


def test_check_layer_catches_mutation_and_upcast() -> None:
    """check_layer fails on a layer that changes its input in place, or returns float64 for float32."""
    relu = get_registry().entries("layer")["relu"].cls

    class Mutates(relu):  # type: ignore[misc, valid-type]
        def forward(self, params: Any, inputs: Any, training: bool) -> Any:
            out, cache = super().forward(params, inputs, training)
            inputs[0][...] = 0
            return out, cache

    class Upcasts(relu):  # type: ignore[misc, valid-type]
        def forward(self, params: Any, inputs: Any, training: bool) -> Any:
            out, cache = super().forward(params, inputs, training)
            return out.astype(np.float64), cache

    with pytest.raises(AssertionError, match=r"input 0 \(in forward\) was modified in place"):
        check_layer(Mutates, {}, [(3,)])
    with pytest.raises(AssertionError, match="float32 forward output is float64"):
        check_layer(Upcasts, {}, [(3,)])


def test_check_loss_catches_a_wrong_gradient() -> None:
    """check_loss fails on a loss whose gradient has the wrong scale."""
    mse = get_registry().entries("loss")["mse"].cls

    class Summed(mse):  # type: ignore[misc, valid-type]
        def backward(self, cache: Any) -> Any:
            return [g * 2 for g in super().backward(cache)]

    with pytest.raises(AssertionError, match="gradient of mse input 0 at index"):
        check_loss(Summed, {}, [(2,), (2,)])
