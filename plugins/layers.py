"""Built-in layers: ``dense`` and ``relu``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import graphnet
from graphnet.base import Array, Shape


class Dense(graphnet.Layer):
    """Fully connected layer on the last axis: Y = X·W + b."""

    type = "dense"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        units: int = Field(ge=1, description="Number of output units (the size of the last axis).")
        bias: bool = Field(True, description="Whether to add a learnable bias b.")
        init: Literal["glorot_uniform", "he_uniform", "uniform", "normal", "zeros"] = Field(
            "glorot_uniform",
            description=(
                "How W is drawn: glorot_uniform U(±√(6/(in+out))), he_uniform U(±√(6/in)), "
                "uniform U[0,1) and normal N(0,1) (b drawn the same way, as numpy's rand/randn), "
                "zeros. b is zero except for uniform and normal."
            ),
        )

    def output_shape(self, input_shapes: Sequence[Shape]) -> Shape:
        (shape,) = input_shapes
        if not shape:
            raise graphnet.ShapeError("dense needs inputs with at least one axis")
        return (*shape[:-1], self.options.units)

    def init_params(
        self, input_shapes: Sequence[Shape], rng: np.random.Generator
    ) -> dict[str, Array]:
        n_in, n_out = input_shapes[0][-1], self.options.units
        init = self.options.init
        if init == "uniform":
            W, b = rng.random((n_in, n_out)), rng.random(n_out)
        elif init == "normal":
            W, b = rng.standard_normal((n_in, n_out)), rng.standard_normal(n_out)
        else:
            limit = {
                "glorot_uniform": np.sqrt(6 / (n_in + n_out)),
                "he_uniform": np.sqrt(6 / n_in),
            }.get(init, 0.0)
            W = rng.uniform(-limit, limit, (n_in, n_out)) if limit else np.zeros((n_in, n_out))
            b = np.zeros(n_out)
        return {"W": W, "b": b} if self.options.bias else {"W": W}

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        (X,) = inputs
        Y = X @ params["W"]
        if "b" in params:
            Y += params["b"]
        return Y, X

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array], dict[str, Array]]:
        X, dY = cache, grad
        W = params["W"]
        dX = dY @ W.T
        X2, dY2 = X.reshape(-1, W.shape[0]), dY.reshape(-1, W.shape[1])
        grads = {"W": X2.T @ dY2}
        if "b" in params:
            grads["b"] = dY2.sum(axis=0)
        return [dX], grads


class ReLU(graphnet.Layer):
    """Rectified linear unit, elementwise: max(x, 0)."""

    type = "relu"

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        (X,) = inputs
        mask = X > 0
        return X * mask, mask

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array], dict[str, Array]]:
        return [grad * cache], {}


@graphnet.hookimpl
def graphnet_layers() -> list[type[graphnet.Layer]]:
    return [Dense, ReLU]
