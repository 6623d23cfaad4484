"""Built-in losses: mse, cross_entropy and bce."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

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
        flat = diff.reshape(-1)
        return np.dot(flat, flat) / diff.dtype.type(diff.size), diff

    def backward(self, cache: Any) -> list[Array | None]:
        d_prediction = cache  # this loss's own array, used once: scale it in place
        d_prediction *= 2.0 / d_prediction.size
        needed = self.input_grads_needed
        return [d_prediction, -d_prediction if needed is None or needed[1] else None]


class CrossEntropy(graphnet.Loss):
    """Softmax cross-entropy of logits, averaged over samples; labels are class ids or one-hot."""

    type = "cross_entropy"

    def check_shapes(self, input_shapes: Sequence[Shape]) -> None:
        logits, labels = input_shapes
        if len(logits) != 1:
            raise graphnet.ShapeError(f"logits must have shape [classes], got {list(logits)}")
        if list(labels) not in ([1], list(logits)):
            raise graphnet.ShapeError(
                f"labels must be class ids of shape [1] or one-hot of shape {list(logits)}, got {list(labels)}"
            )

    def forward(self, inputs: Sequence[Array]) -> tuple[Any, Any]:
        logits, labels = inputs
        n, classes = logits.shape
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        if labels.shape[-1] == 1 and classes != 1:
            ids = labels[:, 0].astype(np.intp)
            bad = np.flatnonzero((ids != labels[:, 0]) | (ids < 0) | (ids >= classes))
            if bad.size:
                raise graphnet.DataError(
                    f"label {float(labels[bad[0], 0])!r} of sample {int(bad[0])} of the batch "
                    f"is not a class id in 0..{classes - 1}"
                )
            value = -log_p[np.arange(n), ids].mean()
            return value, (log_p, ids, None)
        value = -(labels * log_p).sum() / n
        return value, (log_p, None, labels)

    def backward(self, cache: Any) -> list[Array | None]:
        log_p, ids, labels = cache
        n = log_p.shape[0]
        p = np.exp(log_p)
        if ids is not None:
            p[np.arange(n), ids] -= 1
            return [p / log_p.dtype.type(n), None]
        d_logits = (p * labels.sum(axis=-1, keepdims=True) - labels) / log_p.dtype.type(n)
        return [d_logits, -log_p / log_p.dtype.type(n)]


class BCE(graphnet.Loss):
    """Binary cross-entropy of logits (sigmoid inside, numerically stable), averaged over elements."""

    type = "bce"

    def check_shapes(self, input_shapes: Sequence[Shape]) -> None:
        logits, target = input_shapes
        if logits != target:
            raise graphnet.ShapeError(
                f"logits {list(logits)} and target {list(target)} must have one shape"
            )

    def forward(self, inputs: Sequence[Array]) -> tuple[Any, Any]:
        z, t = inputs
        value = (np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))).mean()
        return value, (z, t)

    def backward(self, cache: Any) -> list[Array | None]:
        z, t = cache
        scale = z.dtype.type(z.size)
        sigmoid = 0.5 * (1 + np.tanh(0.5 * z))
        return [(sigmoid - t) / scale, -z / scale]


@graphnet.hookimpl
def graphnet_losses() -> list[type[graphnet.Loss]]:
    return [MSE, CrossEntropy, BCE]
