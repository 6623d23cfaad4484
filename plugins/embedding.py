"""Built-in embedding layer: integer ids to learned vectors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import graphnet
from graphnet.base import Array, Shape


class Embedding(graphnet.Layer):
    """A learned vector per id: ids [T] -> [T, units], row `id` of E (as torch.nn.Embedding).

    The ids arrive as floats (the engine casts data to the spec's dtype); each must be a whole
    number in [0, vocab), else the batch is refused with a `graphnet.DataError` naming the sample.
    The ids take no gradient.
    """

    type = "embedding"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        vocab: int = Field(ge=1, description="Number of distinct ids: ids run from 0 to vocab - 1.")
        units: int = Field(ge=1, description="Length of each id's vector.")

    def output_shape(self, input_shapes: Sequence[Shape]) -> Shape:
        shape = tuple(input_shapes[0])
        if len(shape) != 1:
            raise graphnet.ShapeError(
                f"embedding needs per-sample inputs of shape [T] (a sequence of ids), got "
                f"{list(shape)}; the output is [T, {self.options.units}]"
            )
        return (*shape, self.options.units)

    def init_params(
        self, input_shapes: Sequence[Shape], rng: np.random.Generator
    ) -> dict[str, Array]:
        return {"E": rng.standard_normal((self.options.vocab, self.options.units))}

    def _ids(self, X: Array) -> Array:
        with np.errstate(invalid="ignore"):  # NaN and inf: refused below
            ids = X.astype(np.intp)
        bad = (ids != X) | (ids < 0) | (ids >= self.options.vocab)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise graphnet.DataError(
                f"embedding: sample {index[0]} of the batch holds the id {float(X[index])!r} "
                f"(at position {list(index[1:])}); ids must be whole numbers from 0 to "
                f"{self.options.vocab - 1} (vocab {self.options.vocab})"
            )
        return ids

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        (X,) = inputs
        ids = self._ids(X)
        return params["E"][ids], ids

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[list[Array | None], dict[str, Array]]:
        ids = cache.reshape(-1)
        E = params["E"]
        out = (self.grad_out or {}).get("E")
        dE = out if out is not None and out.dtype == grad.dtype else np.empty_like(E, grad.dtype)
        dE.fill(0)
        np.add.at(dE, ids, grad.reshape(-1, E.shape[1]))
        return [None], {"E": dE}

    def to_onnx(self, ctx: Any, inputs: Sequence[str], params: Mapping[str, str]) -> str:
        ids = ctx.node("Cast", inputs, to=7)  # the ids arrive in the spec's dtype; 7: int64
        return ctx.node("Gather", [params["E"], ids], axis=0)


@graphnet.hookimpl
def graphnet_layers() -> list[type[graphnet.Layer]]:
    return [Embedding]
