"""Built-in normalization layers: batchnorm (with running statistics as buffers) and layernorm."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import graphnet
from graphnet.base import Array, Shape


def _features(kind: str, shape: Shape) -> int:
    if not shape:
        raise graphnet.ShapeError(
            f"{kind} normalizes each feature of the last axis; it needs inputs with at least "
            f"one axis, got {list(shape)}"
        )
    return shape[-1]


class BatchNorm(graphnet.Layer):
    """Batch normalization over every axis but the last (as torch.nn.BatchNorm1d/2d, channels last).

    While training it normalizes with the batch's mean and (biased) variance and updates the
    buffers `running_mean` and `running_var` in place (the latter with the unbiased variance);
    otherwise it normalizes with the buffers.
    """

    type = "batchnorm"
    buffers = ("running_mean", "running_var")

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        momentum: float = Field(
            0.1,
            ge=0,
            le=1,
            description="Weight of the batch in the running statistics: r = (1 - m)·r + m·batch.",
        )
        eps: float = Field(1e-5, gt=0, description="Added to the variance before the square root.")

    def output_shape(self, input_shapes: Sequence[Shape]) -> Shape:
        _features("batchnorm", tuple(input_shapes[0]))
        return input_shapes[0]

    def init_params(
        self, input_shapes: Sequence[Shape], rng: np.random.Generator
    ) -> dict[str, Array]:
        C = _features("batchnorm", tuple(input_shapes[0]))
        return {
            "gamma": np.ones(C),
            "beta": np.zeros(C),
            "running_mean": np.zeros(C),
            "running_var": np.ones(C),
        }

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        (X,) = inputs
        axes = tuple(range(X.ndim - 1))
        eps = X.dtype.type(self.options.eps)
        if training:
            n = math.prod(X.shape[:-1])
            if n < 2:
                raise graphnet.DataError(
                    f"batchnorm needs more than one value per feature while training, got a "
                    f"batch of shape {list(X.shape)}; choose a batch_size that leaves no batch "
                    "of a single sample"
                )
            mean = X.mean(axis=axes)
            centered = X - mean
            var = np.mean(centered * centered, axis=axes)
            m = self.options.momentum
            running_mean, running_var = params["running_mean"], params["running_var"]
            running_mean *= 1 - m
            running_mean += m * mean
            running_var *= 1 - m
            running_var += (m * n / (n - 1)) * var
        else:
            centered = X - params["running_mean"]
            var = params["running_var"]
        inv_std = 1 / np.sqrt(var + eps)
        Xhat = centered * inv_std
        Y = Xhat * params["gamma"] + params["beta"]
        return Y, (Xhat, inv_std, training)

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array], dict[str, Array]]:
        Xhat, inv_std, training = cache
        axes = tuple(range(grad.ndim - 1))
        dgamma = np.sum(grad * Xhat, axis=axes)
        dbeta = np.sum(grad, axis=axes)
        scale = params["gamma"] * inv_std
        if training:
            n = grad.dtype.type(math.prod(grad.shape[:-1]))
            dX = scale * (grad - dbeta / n - Xhat * (dgamma / n))
        else:
            dX = grad * scale
        return [dX], {"gamma": dgamma, "beta": dbeta}

    def to_onnx(self, ctx: Any, inputs: Sequence[str], params: Mapping[str, str]) -> str:
        """Inference with the running statistics, in forward's operations and order."""
        var = ctx.arrays["running_var"]
        inv_std = 1 / np.sqrt(var + var.dtype.type(self.options.eps))
        centered = ctx.node("Sub", [inputs[0], params["running_mean"]])
        Xhat = ctx.node("Mul", [centered, ctx.constant(inv_std)])
        return ctx.node("Add", [ctx.node("Mul", [Xhat, params["gamma"]]), params["beta"]])


class LayerNorm(graphnet.Layer):
    """Layer normalization over the last axis, then gamma·x + beta (as torch.nn.LayerNorm)."""

    type = "layernorm"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        eps: float = Field(1e-5, gt=0, description="Added to the variance before the square root.")

    def output_shape(self, input_shapes: Sequence[Shape]) -> Shape:
        _features("layernorm", tuple(input_shapes[0]))
        return input_shapes[0]

    def init_params(
        self, input_shapes: Sequence[Shape], rng: np.random.Generator
    ) -> dict[str, Array]:
        D = _features("layernorm", tuple(input_shapes[0]))
        return {"gamma": np.ones(D), "beta": np.zeros(D)}

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        (X,) = inputs
        centered = X - X.mean(axis=-1, keepdims=True)
        var = np.mean(centered * centered, axis=-1, keepdims=True)
        inv_std = 1 / np.sqrt(var + X.dtype.type(self.options.eps))
        Xhat = centered * inv_std
        return Xhat * params["gamma"] + params["beta"], (Xhat, inv_std)

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array], dict[str, Array]]:
        Xhat, inv_std = cache
        axes = tuple(range(grad.ndim - 1))
        dXhat = grad * params["gamma"]
        mean_d = dXhat.mean(axis=-1, keepdims=True)
        mean_dx = np.mean(dXhat * Xhat, axis=-1, keepdims=True)
        dX = inv_std * (dXhat - mean_d - Xhat * mean_dx)
        return [dX], {"gamma": np.sum(grad * Xhat, axis=axes), "beta": np.sum(grad, axis=axes)}

    def to_onnx(self, ctx: Any, inputs: Sequence[str], params: Mapping[str, str]) -> str:
        """LayerNormalization from opset 17 in float32; before it, and in float64 (where ONNX
        Runtime's LayerNormalization falls short of float64's precision), forward's operations."""
        (X,) = inputs
        eps = float(self.options.eps)
        if ctx.opset >= 17 and ctx.dtype == np.float32:
            return ctx.node(
                "LayerNormalization", [X, params["gamma"], params["beta"]], axis=-1, epsilon=eps
            )

        def mean(Z: str) -> str:  # over the last axis; ReduceMean's axes became an input in 18
            if ctx.opset >= 18:
                return str(ctx.node("ReduceMean", [Z, ctx.ints([-1])], keepdims=1))
            return str(ctx.node("ReduceMean", [Z], axes=[-1], keepdims=1))

        centered = ctx.node("Sub", [X, mean(X)])
        var = mean(ctx.node("Mul", [centered, centered]))
        std = ctx.node("Sqrt", [ctx.node("Add", [var, ctx.constant(eps)])])
        inv_std = ctx.node("Div", [ctx.constant(1.0), std])
        Xhat = ctx.node("Mul", [centered, inv_std])
        return ctx.node("Add", [ctx.node("Mul", [Xhat, params["gamma"]]), params["beta"]])


@graphnet.hookimpl
def graphnet_layers() -> list[type[graphnet.Layer]]:
    return [BatchNorm, LayerNorm]
