"""Built-in 2-D layers on channels-last images: conv2d, maxpool2d, avgpool2d, global_avgpool2d.

A sample is `[H, W, C]`. Convolution is im2col plus one matrix product: the windows are copied
into a `[N·Ho·Wo, kh·kw·C]` matrix by one strided copy (never a loop over samples or pixels) and
multiplied by `W` seen as `[kh·kw·C, filters]`. The backward pass is one product for `dW` and one
batched product giving each kernel position's input gradient, which col2im adds back where the
position's windows came from (kh·kw additions). Max pooling over windows that tile the input is
one reshape; other pooling loops over the kh·kw window positions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel, ConfigDict, Field

import graphnet
from graphnet.base import Array, Shape

Size = Annotated[int, Field(ge=1)]
Pair = Size | Annotated[list[Size], Field(min_length=2, max_length=2)]


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[1])


def _image(kind: str, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise graphnet.ShapeError(
            f"{kind} needs per-sample inputs of shape [H, W, C] (channels last), "
            f"got {list(shape)}; add a channel axis of 1 for a grey image, e.g. [{', '.join(map(str, shape))}, 1]"
        )
    H, W, C = shape
    return H, W, C


class Geometry:
    """Where the windows of a 2-D sliding operation sit: kernel, stride, padding, output size."""

    def __init__(
        self,
        kind: str,
        shape: Shape,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        padding: str,
        what: str = "kernel",
    ) -> None:
        self.H, self.W, self.C = _image(kind, shape)
        self.kh, self.kw = kernel
        self.sh, self.sw = stride
        if padding == "valid":
            if self.kh > self.H or self.kw > self.W:
                raise graphnet.ShapeError(
                    f"{kind}: the {what} {list(kernel)} is larger than the input {list(shape)} "
                    f"(padding valid); use a {what} of at most [{self.H}, {self.W}] or padding same"
                )
            self.Ho = (self.H - self.kh) // self.sh + 1
            self.Wo = (self.W - self.kw) // self.sw + 1
            self.pads = (0, 0, 0, 0)
        else:  # same: TensorFlow's SAME, which for stride 1 is torch's padding='same'
            self.Ho, self.Wo = -(-self.H // self.sh), -(-self.W // self.sw)
            ph = max((self.Ho - 1) * self.sh + self.kh - self.H, 0)
            pw = max((self.Wo - 1) * self.sw + self.kw - self.W, 0)
            self.pads = (ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)

    @property
    def padded(self) -> bool:
        return any(self.pads)

    def pad(self, X: Array) -> Array:
        """X with its zero border (X itself for valid padding)."""
        if not self.padded:
            return X
        top, bottom, left, right = self.pads
        N = X.shape[0]
        Xp = np.zeros((N, self.H + top + bottom, self.W + left + right, self.C), X.dtype)
        Xp[:, top : top + self.H, left : left + self.W] = X
        return Xp

    def unpad(self, Xp: Array) -> Array:
        if not self.padded:
            return Xp
        top, _, left, _ = self.pads
        return Xp[:, top : top + self.H, left : left + self.W]

    def window(self, Xp: Array, i: int, j: int) -> Array:
        """The `[N, Ho, Wo, C]` view of Xp that kernel position (i, j) sees."""
        return Xp[
            :,
            i : i + self.sh * (self.Ho - 1) + 1 : self.sh,
            j : j + self.sw * (self.Wo - 1) + 1 : self.sw,
        ]

    def im2col(self, X: Array) -> Array:
        """The windows of X as a `[N, Ho, Wo, kh, kw, C]` array (a copy)."""
        Xp = self.pad(X)
        view = sliding_window_view(Xp, (self.kh, self.kw), axis=(1, 2))  # [N, H', W', C, kh, kw]
        view = view[:, :: self.sh, :: self.sw][:, : self.Ho, : self.Wo]
        return np.ascontiguousarray(view.transpose(0, 1, 2, 4, 5, 3))

    def col2im(self, dcols: Array) -> Array:
        """The adjoint of :meth:`im2col`, from kernel position first `[kh, kw, N, Ho, Wo, C]`
        gradients: each position's gradient added back where its windows came from."""
        N = dcols.shape[2]
        top, bottom, left, right = self.pads
        dXp = np.zeros((N, self.H + top + bottom, self.W + left + right, self.C), dcols.dtype)
        for i in range(self.kh):
            for j in range(self.kw):
                window = self.window(dXp, i, j)
                np.add(window, dcols[i, j], out=window)
        return self.unpad(dXp)


class Conv2D(graphnet.Layer):
    """2-D convolution (cross-correlation, as torch.nn.Conv2d) on [H, W, C] inputs, channels last."""

    type = "conv2d"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        filters: int = Field(ge=1, description="Number of output channels.")
        kernel: Pair = Field(description="Kernel size: an int, or [kh, kw].")
        stride: Pair = Field(1, description="Step between windows: an int, or [sh, sw].")
        padding: Literal["valid", "same"] = Field(
            "valid",
            description=(
                "valid: windows inside the input only. same: zero padding so that the output is "
                "ceil(input / stride) (TensorFlow's SAME; for stride 1 it is torch's "
                "padding='same', the odd pixel going to the bottom and right)."
            ),
        )
        bias: bool = Field(True, description="Whether to add a learnable bias b per filter.")
        init: Literal["glorot_uniform", "he_uniform", "uniform", "normal", "zeros"] = Field(
            "glorot_uniform",
            description=(
                "How W is drawn, with fan_in = kh·kw·C and fan_out = kh·kw·filters: "
                "glorot_uniform U(±√(6/(fan_in+fan_out))), he_uniform U(±√(6/fan_in)), "
                "uniform U[0,1) and normal N(0,1) (b drawn the same way), zeros. "
                "b is zero except for uniform and normal."
            ),
        )

    def _geometry(self, shape: Shape) -> Geometry:
        o = self.options
        return Geometry("conv2d", shape, _pair(o.kernel), _pair(o.stride), o.padding)

    def output_shape(self, input_shapes: Sequence[Shape]) -> Shape:
        g = self._geometry(tuple(input_shapes[0]))
        return (g.Ho, g.Wo, self.options.filters)

    def init_params(
        self, input_shapes: Sequence[Shape], rng: np.random.Generator
    ) -> dict[str, Array]:
        kh, kw = _pair(self.options.kernel)
        C, F = input_shapes[0][-1], self.options.filters
        shape = (kh, kw, C, F)
        fan_in, fan_out = kh * kw * C, kh * kw * F
        init = self.options.init
        if init == "uniform":
            W, b = rng.random(shape), rng.random(F)
        elif init == "normal":
            W, b = rng.standard_normal(shape), rng.standard_normal(F)
        else:
            limit = {
                "glorot_uniform": math.sqrt(6 / (fan_in + fan_out)),
                "he_uniform": math.sqrt(6 / fan_in),
            }.get(init, 0.0)
            W = rng.uniform(-limit, limit, shape) if limit else np.zeros(shape)
            b = np.zeros(F)
        return {"W": W, "b": b} if self.options.bias else {"W": W}

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        (X,) = inputs
        g = self._geometry(X.shape[1:])
        W = params["W"]
        F = W.shape[-1]
        cols = g.im2col(X).reshape(-1, W[..., 0].size)  # [N·Ho·Wo, kh·kw·C]
        Y = cols @ W.reshape(-1, F)
        if "b" in params:
            Y += params["b"]
        return Y.reshape(X.shape[0], g.Ho, g.Wo, F), (cols, g)

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array | None], dict[str, Array]]:
        cols, g = cache
        W = params["W"]
        F = W.shape[-1]
        dY = grad.reshape(-1, F)
        out = self.grad_out or {}
        grads = {"W": _matmul_into(cols.T, dY, out.get("W"), W.shape)}
        if "b" in params:
            grads["b"] = np.sum(dY, axis=0, out=out.get("b"))
        needed = self.input_grads_needed
        dX = None
        if needed is None or needed[0]:
            per_position = W.reshape(g.kh * g.kw, g.C, F).transpose(0, 2, 1)  # [kh·kw, F, C]
            dcols = np.matmul(dY, per_position)  # [kh·kw, N·Ho·Wo, C]
            dX = g.col2im(dcols.reshape(g.kh, g.kw, grad.shape[0], g.Ho, g.Wo, g.C))
        return [dX], grads

    def to_onnx(self, ctx: Any, inputs: Sequence[str], params: Mapping[str, str]) -> str:
        """ONNX's Conv, channels first: X to [N, C, H, W], W to [F, C, kh, kw], and back. In
        float64 (which ONNX Runtime has no Conv for) forward's sum over kernel positions."""
        g = self._geometry(ctx.input_shapes[0])
        if ctx.dtype == np.float64:
            W = ctx.arrays["W"]
            terms = [
                ctx.node("MatMul", [window, ctx.constant(W[i, j])])
                for (i, j), window in _onnx_windows(ctx, inputs[0], g)
            ]
            Y = terms[0]
            for term in terms[1:]:
                Y = ctx.node("Add", [Y, term])
            return ctx.node("Add", [Y, params["b"]]) if "b" in params else Y
        top, bottom, left, right = g.pads
        X = ctx.node("Transpose", inputs, perm=[0, 3, 1, 2])
        W = ctx.node("Transpose", [params["W"]], perm=[3, 2, 0, 1])
        Y = ctx.node(
            "Conv",
            [X, W, *([params["b"]] if "b" in params else [])],
            kernel_shape=[g.kh, g.kw],
            strides=[g.sh, g.sw],
            pads=[top, left, bottom, right],
        )
        return ctx.node("Transpose", [Y], perm=[0, 2, 3, 1])


def _onnx_windows(ctx: Any, X: str, g: Geometry) -> list[tuple[tuple[int, int], str]]:
    """For each kernel position (i, j), the ONNX tensor of the [N, Ho, Wo, C] view of X (zero
    padded) that the position sees, as :meth:`Geometry.window`."""
    if g.padded:
        top, bottom, left, right = g.pads
        X = ctx.node("Pad", [X, ctx.ints([0, top, left, 0, 0, bottom, right, 0])])
    out = []
    for i in range(g.kh):
        for j in range(g.kw):
            starts, ends = [i, j], [i + g.sh * (g.Ho - 1) + 1, j + g.sw * (g.Wo - 1) + 1]
            window = ctx.node(
                "Slice",
                [X, ctx.ints(starts), ctx.ints(ends), ctx.ints([1, 2]), ctx.ints([g.sh, g.sw])],
            )
            out.append(((i, j), window))
    return out


def _matmul_into(A: Array, B: Array, out: Array | None, shape: tuple[int, ...]) -> Array:
    """A @ B reshaped to `shape`, written into `out` (the engine's gradient buffer) when given."""
    if out is not None and out.flags.c_contiguous and out.dtype == np.result_type(A, B):
        np.matmul(A, B, out=out.reshape(A.shape[0], B.shape[1]))
        return out
    return (A @ B).reshape(shape)


class _Pool(graphnet.Layer):
    """What max and average pooling share: the window options and their geometry."""

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        pool: Pair = Field(2, description="Window size: an int, or [ph, pw].")
        stride: Pair | None = Field(
            None, description="Step between windows: an int, or [sh, sw]; default: the pool."
        )
        padding: Literal["valid"] = Field(
            "valid", description="valid: windows inside the input only (the rest is dropped)."
        )

    def _geometry(self, shape: Shape) -> Geometry:
        o = self.options
        pool = _pair(o.pool)
        stride = pool if o.stride is None else _pair(o.stride)
        return Geometry(self.type, shape, pool, stride, o.padding, what="pool")

    def output_shape(self, input_shapes: Sequence[Shape]) -> Shape:
        g = self._geometry(tuple(input_shapes[0]))
        return (g.Ho, g.Wo, g.C)

    onnx_op: ClassVar[str] = ""

    def to_onnx(self, ctx: Any, inputs: Sequence[str], params: Mapping[str, str]) -> str:
        """ONNX's pool, channels first; in float64 (no AveragePool in ONNX Runtime) forward's
        sum over the window positions, times 1 / (ph·pw)."""
        g = self._geometry(ctx.input_shapes[0])
        if self.onnx_op == "AveragePool" and ctx.dtype == np.float64:
            windows = [window for _, window in _onnx_windows(ctx, inputs[0], g)]
            Y = windows[0]
            for window in windows[1:]:
                Y = ctx.node("Add", [Y, window])
            return ctx.node("Mul", [Y, ctx.constant(1 / (g.kh * g.kw))])
        X = ctx.node("Transpose", inputs, perm=[0, 3, 1, 2])
        Y = ctx.node(self.onnx_op, [X], kernel_shape=[g.kh, g.kw], strides=[g.sh, g.sw])
        return ctx.node("Transpose", [Y], perm=[0, 2, 3, 1])


class MaxPool2D(_Pool):
    """Maximum over each window of H and W, per channel (as torch.nn.MaxPool2d)."""

    type = "maxpool2d"
    onnx_op = "MaxPool"

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        (X,) = inputs
        g = self._geometry(X.shape[1:])
        if (g.sh, g.sw) == (g.kh, g.kw):  # windows tile the input: one reshape, no loop
            return self._tiled_forward(X, g)
        Y = g.window(X, 0, 0).copy()
        where = np.zeros(Y.shape, np.uint8 if g.kh * g.kw < 256 else np.intp)
        for p in range(1, g.kh * g.kw):
            window = g.window(X, *divmod(p, g.kw))
            better = window > Y  # strictly: a tie keeps the first maximum, as torch
            np.copyto(Y, window, where=better)
            np.copyto(where, p, where=better)
        return Y, (where, X.shape, g)

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array], dict[str, Array]]:
        if cache[0] is None:
            return [self._tiled_backward(cache, grad)], {}
        where, shape, g = cache
        dX = np.zeros(shape, grad.dtype)
        for p in range(g.kh * g.kw):
            window = g.window(dX, *divmod(p, g.kw))
            window += grad * (where == p)
        return [dX], {}

    @staticmethod
    def _tiled_forward(X: Array, g: Geometry) -> tuple[Array, Any]:
        """Windows that tile the input: elementwise maxima of the kh·kw strided views, and for
        each position a mask of the windows whose first maximum it holds."""
        positions = [g.window(X, *divmod(p, g.kw)) for p in range(g.kh * g.kw)]
        Y = positions[0].copy()
        for view in positions[1:]:
            np.maximum(Y, view, out=Y)
        first = np.empty((len(positions), *Y.shape), bool)
        np.equal(positions[0], Y, out=first[0])
        seen = first[0].copy()
        for p, view in enumerate(positions[1:], start=1):
            np.equal(view, Y, out=first[p])
            np.greater(first[p], seen, out=first[p])  # a maximum, and none before it
            seen |= first[p]
        return Y, (None, X.shape, g, first)

    @staticmethod
    def _tiled_backward(cache: Any, grad: Array) -> Array:
        _, shape, g, first = cache
        covered = (g.Ho * g.kh, g.Wo * g.kw) == shape[1:3]
        dX = np.empty(shape, grad.dtype) if covered else np.zeros(shape, grad.dtype)
        for p in range(g.kh * g.kw):
            np.multiply(grad, first[p], out=g.window(dX, *divmod(p, g.kw)))
        return dX


class AvgPool2D(_Pool):
    """Mean over each window of H and W, per channel (as torch.nn.AvgPool2d)."""

    type = "avgpool2d"
    onnx_op = "AveragePool"

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        (X,) = inputs
        g = self._geometry(X.shape[1:])
        Y = np.zeros((X.shape[0], g.Ho, g.Wo, g.C), X.dtype)
        for i in range(g.kh):
            for j in range(g.kw):
                Y += g.window(X, i, j)
        Y *= X.dtype.type(1 / (g.kh * g.kw))
        return Y, (X.shape, g)

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array], dict[str, Array]]:
        shape, g = cache
        share = grad * grad.dtype.type(1 / (g.kh * g.kw))
        dX = np.zeros(shape, grad.dtype)
        for i in range(g.kh):
            for j in range(g.kw):
                g.window(dX, i, j)[...] += share
        return [dX], {}


class GlobalAvgPool2D(graphnet.Layer):
    """Mean over H and W of an [H, W, C] input: one value per channel, [C]."""

    type = "global_avgpool2d"

    def output_shape(self, input_shapes: Sequence[Shape]) -> Shape:
        _, _, C = _image("global_avgpool2d", tuple(input_shapes[0]))
        return (C,)

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        (X,) = inputs
        return X.mean(axis=(1, 2)), X.shape

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array], dict[str, Array]]:
        _, H, W, _ = cache
        dX = np.empty(cache, grad.dtype)
        dX[...] = (grad * grad.dtype.type(1 / (H * W)))[:, None, None, :]
        return [dX], {}

    def to_onnx(self, ctx: Any, inputs: Sequence[str], params: Mapping[str, str]) -> str:
        if ctx.opset >= 18:  # ReduceMean's axes became an input
            return ctx.node("ReduceMean", [inputs[0], ctx.ints([1, 2])], keepdims=0)
        return ctx.node("ReduceMean", inputs, axes=[1, 2], keepdims=0)


@graphnet.hookimpl
def graphnet_layers() -> list[type[graphnet.Layer]]:
    return [Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D]
