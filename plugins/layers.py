"""Built-in layers: dense, relu, leaky_relu, gelu, sigmoid, tanh, softmax, add, multiply, concat,
dropout."""

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
    ) -> tuple[list[Array | None], dict[str, Array]]:
        X, dY = cache, grad
        W = params["W"]
        X2, dY2 = (
            (X, dY) if X.ndim == 2 else (X.reshape(-1, W.shape[0]), dY.reshape(-1, W.shape[1]))
        )
        out = self.grad_out or {}
        grads = {"W": np.matmul(X2.T, dY2, out=out.get("W"))}
        if "b" in params:  # np.add.reduce is np.sum without its Python wrapper: the same bits
            grads["b"] = np.add.reduce(dY2, axis=0, out=out.get("b"))
        needed = self.input_grads_needed
        dX = dY @ W.T if needed is None or needed[0] else None
        return [dX], grads

    def to_onnx(self, ctx: Any, inputs: Sequence[str], params: Mapping[str, str]) -> str:
        Y = ctx.node("MatMul", [inputs[0], params["W"]])
        return ctx.node("Add", [Y, params["b"]]) if "b" in params else Y


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

    def to_onnx(self, ctx: Any, inputs: Sequence[str], params: Mapping[str, str]) -> str:
        return ctx.node("Relu", inputs)


class LeakyReLU(graphnet.Layer):
    """Leaky rectified linear unit, elementwise: x for x > 0, slope·x otherwise."""

    type = "leaky_relu"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        slope: float = Field(0.01, description="The factor applied to x where x <= 0.")

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        (X,) = inputs
        factor = np.where(X > 0, X.dtype.type(1), X.dtype.type(self.options.slope))
        return X * factor, factor

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array], dict[str, Array]]:
        return [grad * cache], {}

    def to_onnx(self, ctx: Any, inputs: Sequence[str], params: Mapping[str, str]) -> str:
        slope = float(self.options.slope)
        if ctx.dtype == np.float32:  # its alpha is a float32 attribute: not a float64 slope
            return ctx.node("LeakyRelu", inputs, alpha=slope)
        (X,) = inputs  # forward's X · where(X > 0, 1, slope)
        positive = ctx.node("Greater", [X, ctx.constant(0.0)])
        factor = ctx.node("Where", [positive, ctx.constant(1.0), ctx.constant(slope)])
        return ctx.node("Mul", [X, factor])


GELU_C = np.sqrt(2 / np.pi)


class GELU(graphnet.Layer):
    """Gaussian error linear unit in its tanh form, elementwise (as torch's approximate='tanh').

    0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    """

    type = "gelu"

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        (X,) = inputs
        c = X.dtype.type(GELU_C)
        T = np.tanh(c * (X + X.dtype.type(0.044715) * X * X * X))
        return X.dtype.type(0.5) * X * (1 + T), (X, T)

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array], dict[str, Array]]:
        X, T = cache
        half, c = X.dtype.type(0.5), X.dtype.type(GELU_C)
        inner = c * (1 + X.dtype.type(3 * 0.044715) * X * X)
        return [grad * (half * (1 + T) + half * X * (1 - T * T) * inner)], {}

    def to_onnx(self, ctx: Any, inputs: Sequence[str], params: Mapping[str, str]) -> str:
        (X,) = inputs  # the operations of forward, in its order
        cube = ctx.node(
            "Mul", [ctx.node("Mul", [ctx.node("Mul", [ctx.constant(0.044715), X]), X]), X]
        )
        T = ctx.node("Tanh", [ctx.node("Mul", [ctx.constant(GELU_C), ctx.node("Add", [X, cube])])])
        half_x = ctx.node("Mul", [ctx.constant(0.5), X])
        return ctx.node("Mul", [half_x, ctx.node("Add", [ctx.constant(1.0), T])])


class Sigmoid(graphnet.Layer):
    """Logistic sigmoid, elementwise: 1 / (1 + e^-x)."""

    type = "sigmoid"

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        (X,) = inputs
        Y = 0.5 * (1 + np.tanh(0.5 * X))  # the same function, and no overflow for large |x|
        return Y, Y

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array], dict[str, Array]]:
        Y = cache
        return [grad * Y * (1 - Y)], {}

    def to_onnx(self, ctx: Any, inputs: Sequence[str], params: Mapping[str, str]) -> str:
        half = ctx.constant(0.5)  # forward's tanh form, for the same values
        T = ctx.node("Tanh", [ctx.node("Mul", [half, inputs[0]])])
        return ctx.node("Mul", [half, ctx.node("Add", [ctx.constant(1.0), T])])


class Tanh(graphnet.Layer):
    """Hyperbolic tangent, elementwise."""

    type = "tanh"

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        (X,) = inputs
        Y = np.tanh(X)
        return Y, Y

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array], dict[str, Array]]:
        Y = cache
        return [grad * (1 - Y * Y)], {}

    def to_onnx(self, ctx: Any, inputs: Sequence[str], params: Mapping[str, str]) -> str:
        return ctx.node("Tanh", inputs)


class Softmax(graphnet.Layer):
    """Softmax over the last axis: e^x / Σ e^x, computed stably."""

    type = "softmax"

    def output_shape(self, input_shapes: Sequence[Shape]) -> Shape:
        (shape,) = input_shapes
        if not shape:
            raise graphnet.ShapeError("softmax needs inputs with at least one axis")
        return shape

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        (X,) = inputs
        E = np.exp(X - X.max(axis=-1, keepdims=True))
        Y = E / E.sum(axis=-1, keepdims=True)
        return Y, Y

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array], dict[str, Array]]:
        Y = cache
        return [Y * (grad - (grad * Y).sum(axis=-1, keepdims=True))], {}

    def to_onnx(self, ctx: Any, inputs: Sequence[str], params: Mapping[str, str]) -> str:
        return ctx.node("Softmax", inputs, axis=-1)


def _several(kind: str, input_shapes: Sequence[Shape]) -> None:
    if len(input_shapes) < 2:
        raise graphnet.ShapeError(f"{kind} takes two or more inputs, got {len(input_shapes)}")


def _one_shape(kind: str, input_shapes: Sequence[Shape]) -> Shape:
    """The shape two or more elementwise inputs share, or a ShapeError naming both."""
    _several(kind, input_shapes)
    first = input_shapes[0]
    for i, shape in enumerate(input_shapes[1:], start=1):
        if tuple(shape) != tuple(first):
            raise graphnet.ShapeError(
                f"input 0 has shape {list(first)} but input {i} has shape {list(shape)}; {kind} needs one shape"
            )
    return first


class Add(graphnet.Layer):
    """Elementwise sum of two or more inputs of one shape."""

    type = "add"
    arity = None

    def output_shape(self, input_shapes: Sequence[Shape]) -> Shape:
        return _one_shape("add", input_shapes)

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        Y = inputs[0] + inputs[1]
        for X in inputs[2:]:
            Y += X
        return Y, len(inputs)

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array], dict[str, Array]]:
        return [grad] * cache, {}

    def to_onnx(self, ctx: Any, inputs: Sequence[str], params: Mapping[str, str]) -> str:
        Y = inputs[0]
        for X in inputs[1:]:
            Y = ctx.node("Add", [Y, X])
        return Y


class Multiply(graphnet.Layer):
    """Elementwise product of two or more inputs of one shape."""

    type = "multiply"
    arity = None

    def output_shape(self, input_shapes: Sequence[Shape]) -> Shape:
        return _one_shape("multiply", input_shapes)

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        Y = inputs[0] * inputs[1]
        for X in inputs[2:]:
            Y *= X
        return Y, list(inputs)

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array], dict[str, Array]]:
        inputs = cache
        grads = []
        for i in range(len(inputs)):  # the product of the others: no division, zeros allowed
            others = [X for k, X in enumerate(inputs) if k != i]
            g = grad * others[0]
            for X in others[1:]:
                g *= X
            grads.append(g)
        return grads, {}

    def to_onnx(self, ctx: Any, inputs: Sequence[str], params: Mapping[str, str]) -> str:
        Y = inputs[0]
        for X in inputs[1:]:
            Y = ctx.node("Mul", [Y, X])
        return Y


class Concat(graphnet.Layer):
    """Two or more inputs joined along the last axis."""

    type = "concat"
    arity = None

    def output_shape(self, input_shapes: Sequence[Shape]) -> Shape:
        _several("concat", input_shapes)
        first = tuple(input_shapes[0])
        if not first:
            raise graphnet.ShapeError("concat needs inputs with at least one axis")
        for i, shape in enumerate(input_shapes[1:], start=1):
            if len(shape) != len(first) or tuple(shape[:-1]) != first[:-1]:
                raise graphnet.ShapeError(
                    f"input 0 has shape {list(first)} but input {i} has shape {list(shape)}; "
                    "concat needs the same shape but for the last axis"
                )
        return (*first[:-1], sum(shape[-1] for shape in input_shapes))

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        return np.concatenate(inputs, axis=-1), np.cumsum([X.shape[-1] for X in inputs])[:-1]

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array], dict[str, Array]]:
        return list(np.split(grad, cache, axis=-1)), {}

    def to_onnx(self, ctx: Any, inputs: Sequence[str], params: Mapping[str, str]) -> str:
        return ctx.node("Concat", inputs, axis=-1)


class Dropout(graphnet.Layer):
    """Zeroes each element with probability `rate` while training (scaling the rest by 1/(1-rate))."""

    type = "dropout"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        rate: float = Field(
            ge=0, lt=1, description="Probability of zeroing an element while training."
        )

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        (X,) = inputs
        if not training or self.options.rate == 0:
            return X, None
        keep = 1.0 - self.options.rate
        mask = (self.rng.random(X.shape) < keep).astype(X.dtype) / X.dtype.type(keep)
        return X * mask, mask

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array], dict[str, Array]]:
        return [grad if cache is None else grad * cache], {}

    def to_onnx(self, ctx: Any, inputs: Sequence[str], params: Mapping[str, str]) -> str:
        return ctx.node("Identity", inputs)  # inference: dropout does nothing


@graphnet.hookimpl
def graphnet_layers() -> list[type[graphnet.Layer]]:
    return [Dense, ReLU, LeakyReLU, GELU, Sigmoid, Tanh, Softmax, Add, Multiply, Concat, Dropout]
