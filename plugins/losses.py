"""Built-in losses: ``mse``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import graphnet
from graphnet.base import Array, Shape


class MSE(graphnet.Loss):
    """Mean squared error over all elements: mean((prediction - target)²)."""

    type = "mse"

    def check_shapes(self, input_shapes: Sequence[Shape]) -> None:
        prediction, target = input_shapes
        if prediction != target:
            raise graphnet.ShapeError(
                f"prediction {list(prediction)} and target {list(target)} must have one shape"
            )

    def forward(self, inputs: Sequence[Array]) -> tuple[Any, Any]:
        prediction, target = inputs
        diff = prediction - target
        return (diff * diff).mean(), diff

    def backward(self, cache: Any) -> list[Array | None]:
        diff = cache
        d_prediction = diff * (2.0 / diff.size)
        return [d_prediction, -d_prediction]


@graphnet.hookimpl
def graphnet_losses() -> list[type[graphnet.Loss]]:
    return [MSE]
