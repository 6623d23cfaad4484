"""An example graphnet plugin: a learnable ``gain`` layer, a ``log_cosh`` loss and a
``gained_dense`` block (a dense layer followed by a gain).

It is written exactly as any third-party plugin would be: classes that subclass
``graphnet.Layer`` and ``graphnet.Loss``, hook implementations that return them, and one
``[project.entry-points.graphnet]`` line in ``pyproject.toml`` that tells graphnet to load
this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import graphnet
from graphnet.base import Array, Shape

__all__ = ["BLOCKS", "Gain", "LogCosh", "graphnet_blocks", "graphnet_layers", "graphnet_losses"]


class Gain(graphnet.Layer):
    """y = a·x with one learnable scalar gain a."""

    type = "gain"  # the spec's `type:`
    arity = 1  # inputs it takes

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        start: float = Field(1.0, description="The initial value of the gain a.")

    def output_shape(self, input_shapes: Sequence[Shape]) -> Shape:
        return input_shapes[0]

    def init_params(
        self, input_shapes: Sequence[Shape], rng: np.random.Generator
    ) -> dict[str, Array]:
        return {"a": np.full((1,), self.options.start)}

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        (X,) = inputs
        return params["a"] * X, X

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array | None], dict[str, Array]]:
        X, dY = cache, grad
        # An engine hint (optional): False when nothing needs the gradient of x, as when x is a
        # graph input; then skip computing it. None means no hint was given: compute it.
        needed = self.input_grads_needed
        dX = params["a"] * dY if needed is None or needed[0] else None
        return [dX], {"a": np.sum(dY * X, keepdims=True).reshape(1)}

    def to_onnx(self, ctx: Any, inputs: Sequence[str], params: Mapping[str, str]) -> str:
        # Optional, for `graphnet export`: write y = a·x as ONNX nodes. `inputs` and `params`
        # hold tensor names; ctx.node adds a node and returns the name of its output.
        return ctx.node("Mul", [params["a"], inputs[0]])


class LogCosh(graphnet.Loss):
    """Log-cosh loss, mean over all elements: log(cosh(prediction - target))."""

    type = "log_cosh"

    def check_shapes(self, input_shapes: Sequence[Shape]) -> None:
        prediction, target = input_shapes
        if tuple(prediction) != tuple(target):
            raise graphnet.ShapeError(
                f"prediction {list(prediction)} and target {list(target)} must have one shape"
            )

    def forward(self, inputs: Sequence[Array]) -> tuple[Any, Any]:
        prediction, target = inputs
        R = prediction - target
        A = np.abs(R)
        # log(cosh r) = |r| + log(1 + e^(-2|r|)) - log 2, which never overflows; log 2 is a
        # Python float so that a float32 batch stays float32
        L = A + np.log1p(np.exp(-2 * A)) - math.log(2)
        return L.mean(), R

    def backward(self, cache: Any) -> list[Array | None]:
        R = cache
        dP = np.tanh(R) / R.size  # d mean / d prediction
        return [dP, -dP]  # the target's gradient is the opposite of the prediction's


@graphnet.hookimpl
def graphnet_layers() -> list[type[graphnet.Layer]]:
    return [Gain]


@graphnet.hookimpl
def graphnet_losses() -> list[type[graphnet.Loss]]:
    return [LogCosh]


# A block in the spec's own format: a spec uses it as a node type (`type: gained_dense`).
BLOCKS: dict[str, dict[str, Any]] = {
    "gained_dense": {
        "inputs": ["in"],
        "options": {"units": 8, "start": 1.0},
        "nodes": [
            {"name": "fc", "type": "dense", "inputs": ["in"], "units": "$units"},
            {"name": "gain", "type": "gain", "inputs": ["fc"], "start": "$start"},
        ],
        "output": "gain",
    }
}


@graphnet.hookimpl
def graphnet_blocks() -> dict[str, dict[str, Any]]:
    return BLOCKS
