"""Built-in layers that rearrange values without computing: flatten and reshape.

Both act per sample, in C (row-major) order of the per-sample shape; the batch axis is kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

import graphnet
from graphnet.base import Array, Shape


class Flatten(graphnet.Layer):
    """Every axis of a sample joined into one: [H, W, C] -> [H·W·C]."""

    type = "flatten"

    def output_shape(self, input_shapes: Sequence[Shape]) -> Shape:
        return (math.prod(input_shapes[0]),)

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        (X,) = inputs
        return X.reshape(X.shape[0], -1), X.shape

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array], dict[str, Array]]:
        return [grad.reshape(cache)], {}

    def to_onnx(self, ctx: Any, inputs: Sequence[str], params: Mapping[str, str]) -> str:
        return ctx.node("Flatten", inputs, axis=1)  # [N, ...] -> [N, -1], C order


class Reshape(graphnet.Layer):
    """Each sample's values in a new per-sample shape (one entry may be -1: whatever is left)."""

    type = "reshape"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        shape: list[int] = Field(
            min_length=1,
            description=(
                "The per-sample output shape, without the batch axis; one entry may be -1, "
                "the size that makes the number of values come out the same."
            ),
        )

    def output_shape(self, input_shapes: Sequence[Shape]) -> Shape:
        given = tuple(input_shapes[0])
        wanted = list(self.options.shape)
        size = math.prod(given)
        unknown = [i for i, d in enumerate(wanted) if d == -1]
        if len(unknown) > 1 or any(d == 0 or d < -1 for d in wanted):
            raise graphnet.ShapeError(
                f"reshape: {wanted} is no shape; use positive sizes and at most one -1"
            )
        known = math.prod(d for d in wanted if d != -1)
        if unknown and size % known == 0:
            wanted[unknown[0]] = size // known
        if math.prod(wanted) != size or (unknown and size % known):
            raise graphnet.ShapeError(
                f"reshape: cannot reshape {list(given)} ({size} values) to "
                f"{list(self.options.shape)} ({'a multiple of ' if unknown else ''}{known} values)"
            )
        return tuple(wanted)

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        (X,) = inputs
        shape = self.output_shape([X.shape[1:]])
        return X.reshape(X.shape[0], *shape), X.shape

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array], dict[str, Array]]:
        return [grad.reshape(cache)], {}

    def to_onnx(self, ctx: Any, inputs: Sequence[str], params: Mapping[str, str]) -> str:
        return ctx.node("Reshape", [inputs[0], ctx.ints([-1, *ctx.output_shape])])


@graphnet.hookimpl
def graphnet_layers() -> list[type[graphnet.Layer]]:
    return [Flatten, Reshape]
