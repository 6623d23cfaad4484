"""An example graphnet plugin: a learnable ``scale`` layer and a ``pseudo_huber`` loss.

It is written exactly as any third-party plugin would be: classes that subclass
``graphnet.Layer`` and ``graphnet.Loss``, hook implementations that return them, and one
``[project.entry-points.graphnet]`` line in ``pyproject.toml`` that tells graphnet to load
this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import graphnet
from graphnet.base import Array, Shape

__all__ = ["PseudoHuber", "Scale", "graphnet_layers", "graphnet_losses"]


class Scale(graphnet.Layer):
    """y = a·x with one learnable scalar a."""

    type = "scale"  # the spec's `type:`
    arity = 1  # inputs it takes

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        start: float = Field(1.0, description="The initial value of the scalar a.")

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
    ) -> tuple[list[Array], dict[str, Array]]:
        X, dY = cache, grad
        return [params["a"] * dY], {"a": np.sum(dY * X, keepdims=True).reshape(1)}


class PseudoHuber(graphnet.Loss):
    """Pseudo-Huber loss, mean over all elements: delta²·(√(1 + (r/delta)²) - 1).

    A smooth Huber loss: about ½r² for |r| much below delta, about delta·|r| far beyond it.
    """

    type = "pseudo_huber"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        delta: float = Field(
            1.0,
            gt=0,
            description="Where the loss turns from quadratic to linear in |prediction - target|.",
        )

    def check_shapes(self, input_shapes: Sequence[Shape]) -> None:
        prediction, target = input_shapes
        if tuple(prediction) != tuple(target):
            raise graphnet.ShapeError(
                f"prediction {list(prediction)} and target {list(target)} must have one shape"
            )

    def forward(self, inputs: Sequence[Array]) -> tuple[Any, Any]:
        prediction, target = inputs
        delta = self.options.delta
        R = prediction - target
        S = np.sqrt(1 + (R / delta) ** 2)
        L = delta**2 * (S - 1)
        return L.mean(), (R, S)

    def backward(self, cache: Any) -> list[Array | None]:
        R, S = cache
        dP = R / S / R.size  # d mean / d prediction
        return [dP, -dP]  # the target's gradient is the opposite of the prediction's


@graphnet.hookimpl
def graphnet_layers() -> list[type[graphnet.Layer]]:
    return [Scale]


@graphnet.hookimpl
def graphnet_losses() -> list[type[graphnet.Loss]]:
    return [PseudoHuber]
