"""Built-in losses: mse, huber, l1, cross_entropy and bce, each as PyTorch defines it.

Every loss is averaged as PyTorch's default ``reduction="mean"``. Options at their defaults
take the plain paths, so adding an option never changes the bits of a run that does not use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import graphnet
from graphnet.base import Array, Shape

NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


def _one_shape(input_shapes: Sequence[Shape]) -> None:
    prediction, target = input_shapes
    if prediction != target:
        raise graphnet.ShapeError(
            f"prediction {list(prediction)} and target {list(target)} must have one shape"
        )


class MSE(graphnet.Loss):
    """Mean squared error over all elements: mean((prediction - target)²)."""

    type = "mse"

    def check_shapes(self, input_shapes: Sequence[Shape]) -> None:
        _one_shape(input_shapes)

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


class Huber(graphnet.Loss):
    """Huber loss, as torch.nn.HuberLoss: ½d² where |d| < delta, else delta·(|d| - ½·delta).

    ``d = prediction - target``, averaged over all elements; the gradient is ``d`` clipped to
    [-delta, delta].
    """

    type = "huber"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        delta: float = Field(
            1.0,
            gt=0,
            allow_inf_nan=False,
            description="Where the loss turns from quadratic to linear in |prediction - target|.",
        )

    def check_shapes(self, input_shapes: Sequence[Shape]) -> None:
        _one_shape(input_shapes)

    def forward(self, inputs: Sequence[Array]) -> tuple[Any, Any]:
        prediction, target = inputs
        diff = prediction - target
        delta = diff.dtype.type(self.options.delta)
        size = np.abs(diff)
        values = np.where(size < delta, 0.5 * diff * diff, delta * (size - 0.5 * delta))
        return values.mean(), diff

    def backward(self, cache: Any) -> list[Array | None]:
        diff = cache
        delta = diff.dtype.type(self.options.delta)
        d_prediction = np.clip(diff, -delta, delta)
        d_prediction /= diff.dtype.type(diff.size)
        needed = self.input_grads_needed
        return [d_prediction, -d_prediction if needed is None or needed[1] else None]


class L1(graphnet.Loss):
    """Mean absolute error as a loss, as torch.nn.L1Loss: mean(|prediction - target|).

    The gradient is sign(prediction - target) / size, 0 where the two are equal.
    """

    type = "l1"

    def check_shapes(self, input_shapes: Sequence[Shape]) -> None:
        _one_shape(input_shapes)

    def forward(self, inputs: Sequence[Array]) -> tuple[Any, Any]:
        prediction, target = inputs
        diff = prediction - target
        return np.abs(diff).mean(), diff

    def backward(self, cache: Any) -> list[Array | None]:
        d_prediction = np.sign(cache)
        d_prediction /= cache.dtype.type(cache.size)
        needed = self.input_grads_needed
        return [d_prediction, -d_prediction if needed is None or needed[1] else None]


class CrossEntropy(graphnet.Loss):
    """Softmax cross-entropy of logits, as torch.nn.CrossEntropyLoss; labels are class ids or one-hot.

    Without options it is the mean over samples of -log p[label]. With ``class_weights`` w the
    mean over class ids is sum(w[y]·nll) / sum(w[y]); over one-hot or soft labels t it is
    sum(w·t·(-log p)) / samples. ``label_smoothing`` ε mixes the labels with the uniform
    distribution over the C classes: (1-ε)·t + ε/C, weighted the same way.
    """

    type = "cross_entropy"
    applies = "softmax"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        class_weights: list[NonNegative] | None = Field(
            None,
            description=(
                "A non-negative weight per class (torch's `weight`); with class ids the mean "
                "is sum(w[y]·nll) / sum(w[y])."
            ),
        )
        label_smoothing: float = Field(
            0.0,
            ge=0,
            le=1,
            description="ε: the labels become (1-ε)·labels + ε/classes, as torch's.",
        )

    def check_shapes(self, input_shapes: Sequence[Shape]) -> None:
        logits, labels = input_shapes
        self.classes = logits[0] if len(logits) == 1 else 0
        if len(logits) != 1:
            raise graphnet.ShapeError(f"logits must have shape [classes], got {list(logits)}")
        if list(labels) not in ([1], list(logits)):
            raise graphnet.ShapeError(
                f"labels must be class ids of shape [1] or one-hot of shape {list(logits)}, got {list(labels)}"
            )
        weights = self.options.class_weights
        if weights is not None and len(weights) != logits[0]:
            raise graphnet.ShapeError(
                f"class_weights has {len(weights)} weights for logits of shape {list(logits)}; "
                f"give one weight per class ({logits[0]})"
            )

    def check_targets(self, targets: Sequence[Array | None]) -> None:
        """Class ids must be whole numbers in 0..classes-1 (classes from ``check_shapes``)."""
        labels = targets[-1]
        classes = getattr(self, "classes", 0)
        if labels is None or labels.shape[-1] != 1 or classes < 2:
            return
        ids = labels[:, 0]
        bad = np.flatnonzero((ids != np.round(ids)) | (ids < 0) | (ids >= classes))
        if bad.size:
            sample = int(bad[0])
            raise graphnet.DataError(
                f"label {float(ids[sample])!r} of sample {sample} is not a class id in "
                f"0..{classes - 1}",
                sample=sample,
            )

    def forward(self, inputs: Sequence[Array]) -> tuple[Any, Any]:
        logits, labels = inputs
        n, classes = logits.shape
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        plain = self.options.class_weights is None and not self.options.label_smoothing
        ids = None
        if labels.shape[-1] == 1 and classes != 1:
            ids = labels[:, 0].astype(np.intp)
            bad = np.flatnonzero((ids != labels[:, 0]) | (ids < 0) | (ids >= classes))
            if bad.size:
                raise graphnet.DataError(
                    f"label {float(labels[bad[0], 0])!r} of sample {int(bad[0])} of the batch "
                    f"is not a class id in 0..{classes - 1}"
                )
            if plain:
                value = -log_p[np.arange(n), ids].mean()
                return value, (log_p, ids, None)
        elif plain:
            value = -(labels * log_p).sum() / n
            return value, (log_p, None, labels)
        return self._weighted(log_p, ids, labels)

    def _weighted(self, log_p: Array, ids: Array | None, labels: Array) -> tuple[Any, Any]:
        """The loss with class weights or label smoothing: -sum(q·log p) / denominator.

        q holds each sample's weighted (smoothed) target distribution; the gradient of the
        logits is (p·sum(q) - q) / denominator.
        """
        n, classes = log_p.shape
        dtype = log_p.dtype
        given = self.options.class_weights
        w = np.ones(classes, dtype) if given is None else np.asarray(given, dtype=dtype)
        eps = self.options.label_smoothing
        if ids is not None:
            q = np.zeros_like(log_p)
            q[np.arange(n), ids] = (1 - eps) * w[ids]
            if eps:
                q += (eps / classes) * w
            denominator = w[ids].sum() if given is not None else dtype.type(n)
        else:
            q = (labels * (1 - eps) + eps / classes) * w if eps else labels * w
            denominator = dtype.type(n)
        value = -(q * log_p).sum() / denominator
        return value, (log_p, ids, (q, denominator, w))

    def backward(self, cache: Any) -> list[Array | None]:
        log_p, ids, labels = cache
        n = log_p.shape[0]
        p = np.exp(log_p)
        if isinstance(labels, tuple):
            q, denominator, w = labels
            d_logits = (p * q.sum(axis=-1, keepdims=True) - q) / denominator
            if ids is not None:
                return [d_logits, None]
            d_labels = -log_p * ((1 - self.options.label_smoothing) * w) / denominator
            return [d_logits, d_labels]
        if ids is not None:
            p[np.arange(n), ids] -= 1
            return [p / log_p.dtype.type(n), None]
        d_logits = (p * labels.sum(axis=-1, keepdims=True) - labels) / log_p.dtype.type(n)
        return [d_logits, -log_p / log_p.dtype.type(n)]


class BCE(graphnet.Loss):
    """Binary cross-entropy of logits, as torch.nn.BCEWithLogitsLoss, averaged over elements.

    The sigmoid is inside and the loss is stable for logits of any size. ``pos_weight`` p
    weights the positive term: -(p·t·log σ(z) + (1-t)·log(1-σ(z))).
    """

    type = "bce"
    applies = "sigmoid"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        pos_weight: NonNegative | list[NonNegative] | None = Field(
            None,
            description=(
                "Weight of the positive examples: one number, or one per output (the last "
                "axis of the logits), as torch's `pos_weight`."
            ),
        )

    def check_shapes(self, input_shapes: Sequence[Shape]) -> None:
        logits, target = input_shapes
        if logits != target:
            raise graphnet.ShapeError(
                f"logits {list(logits)} and target {list(target)} must have one shape"
            )
        weights = self.options.pos_weight
        outputs = logits[-1] if logits else 1
        if isinstance(weights, list) and len(weights) != outputs:
            raise graphnet.ShapeError(
                f"pos_weight has {len(weights)} weights for logits of shape {list(logits)}; "
                f"give one number, or one per output ({outputs})"
            )

    def check_targets(self, targets: Sequence[Array | None]) -> None:
        """Targets are probabilities: every value in [0, 1]."""
        t = targets[-1]
        if t is None:
            return
        bad = np.flatnonzero(((t < 0) | (t > 1)).reshape(len(t), -1).any(axis=1))
        if bad.size:
            sample = int(bad[0])
            value = t[sample].ravel()[((t[sample] < 0) | (t[sample] > 1)).ravel()][0]
            raise graphnet.DataError(
                f"target {float(value)!r} of sample {sample} is outside [0, 1]", sample=sample
            )

    def forward(self, inputs: Sequence[Array]) -> tuple[Any, Any]:
        z, t = inputs
        if self.options.pos_weight is None:
            value = (np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))).mean()
            return value, (z, t)
        # -log σ(z) = softplus(-z) and -log(1 - σ(z)) = z + softplus(-z), so the loss is
        # (1 - t)·z + (1 + (p - 1)·t)·softplus(-z), torch's own formula.
        p_minus_1 = np.asarray(self.options.pos_weight, dtype=z.dtype) - 1
        softplus = np.maximum(-z, 0) + np.log1p(np.exp(-np.abs(z)))
        weight = 1 + p_minus_1 * t
        value = ((1 - t) * z + weight * softplus).mean()
        return value, (z, t, p_minus_1, weight, softplus)

    def backward(self, cache: Any) -> list[Array | None]:
        z, t = cache[:2]
        scale = z.dtype.type(z.size)
        if len(cache) == 2:
            sigmoid = 0.5 * (1 + np.tanh(0.5 * z))
            return [(sigmoid - t) / scale, -z / scale]
        p_minus_1, weight, softplus = cache[2:]
        sigmoid_of_minus_z = 0.5 * (1 - np.tanh(0.5 * z))
        d_z = (1 - t - weight * sigmoid_of_minus_z) / scale
        d_t = (p_minus_1 * softplus - z) / scale
        return [d_z, d_t]


@graphnet.hookimpl
def graphnet_losses() -> list[type[graphnet.Loss]]:
    return [MSE, Huber, L1, CrossEntropy, BCE]
