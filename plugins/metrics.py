"""Built-in metrics: mae, accuracy, rmse, r2, precision, recall, f1 and auc.

mae and accuracy are means over samples, so the engine's batch average is exact; the others
accumulate over the whole epoch (``reset``, ``update``, ``result``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import graphnet
from graphnet.base import Array


class MAE(graphnet.Metric):
    """Mean absolute error: mean(|prediction - target|)."""

    type = "mae"

    def compute(self, prediction: Array, target: Array) -> float:
        return float(np.abs(prediction - target).mean())


class Accuracy(graphnet.Metric):
    """Fraction of samples whose predicted class is right.

    The predicted class is the argmax of the prediction's last axis; with a single output it is
    ``prediction > 0`` (a logit, as `bce` takes). The target is a class id, one-hot, or 0/1.
    """

    type = "accuracy"

    def compute(self, prediction: Array, target: Array) -> float:
        if prediction.shape[-1] == 1:
            predicted = prediction[..., 0] > 0
            actual = target[..., 0] > 0.5
        else:
            predicted = prediction.argmax(axis=-1)
            actual = target[..., 0] if target.shape[-1] == 1 else target.argmax(axis=-1)
        return float(np.mean(predicted == actual))


def _one_shape(metric: graphnet.Metric, prediction: Array, target: Array) -> None:
    if prediction.shape != target.shape:
        raise ValueError(
            f"{metric.type} compares a prediction and a target of one shape, got "
            f"{list(prediction.shape[1:])} and {list(target.shape[1:])} per sample"
        )


class RMSE(graphnet.Metric):
    """Root mean squared error over the whole set: sqrt(mean((prediction - target)²))."""

    type = "rmse"

    def reset(self) -> None:
        self.squares = 0.0
        self.count = 0

    def update(self, prediction: Array, target: Array) -> None:
        _one_shape(self, prediction, target)
        diff = (prediction - target).reshape(-1).astype(np.float64)
        self.squares += float(np.dot(diff, diff))
        self.count += diff.size

    def result(self) -> float:
        return float(np.sqrt(self.squares / self.count)) if self.count else float("nan")


class R2(graphnet.Metric):
    """Coefficient of determination 1 - SS_res / SS_tot over the whole set, as sklearn's r2_score.

    Computed per output column and averaged uniformly over the columns; a constant target
    column scores 1 when it is predicted exactly, else 0.
    """

    type = "r2"

    def reset(self) -> None:
        self.count = 0
        self.mean: Any = 0.0  # per column: the targets' running mean
        self.spread: Any = 0.0  # per column: Σ (target - mean)², merged batch by batch
        self.residual: Any = 0.0  # per column: Σ (target - prediction)²

    def update(self, prediction: Array, target: Array) -> None:
        _one_shape(self, prediction, target)
        n = len(target)
        if not n:
            return
        t = target.reshape(n, -1).astype(np.float64)
        p = prediction.reshape(n, -1).astype(np.float64)
        mean = t.mean(axis=0)
        spread = ((t - mean) ** 2).sum(axis=0)
        total = self.count + n  # Chan et al.'s merge of two (count, mean, spread) summaries
        delta = mean - self.mean
        self.spread = self.spread + spread + delta**2 * (self.count * n / total)
        self.mean = self.mean + delta * (n / total)
        self.count = total
        self.residual = self.residual + ((t - p) ** 2).sum(axis=0)

    def result(self) -> float:
        if not self.count:
            return float("nan")
        residual = np.asarray(self.residual)
        spread = np.asarray(self.spread)
        varying = spread > 0
        scores = np.where(residual == 0, 1.0, 0.0)  # for constant columns
        scores[varying] = 1 - residual[varying] / spread[varying]
        return float(scores.mean())


def _classes(prediction: Array, target: Array) -> tuple[Array, Array, int]:
    """Predicted and actual class ids and the number of classes.

    With one output the prediction is a logit (``> 0`` is class 1) and the target 0/1;
    otherwise the prediction's argmax against class ids or one-hot targets.
    """
    if prediction.shape[-1] == 1:
        predicted = (prediction.reshape(-1) > 0).astype(np.intp)
        return predicted, (target.reshape(-1) > 0.5).astype(np.intp), 2
    classes = prediction.shape[-1]
    predicted = prediction.reshape(-1, classes).argmax(axis=-1)
    if target.shape[-1] == 1:
        actual = target.reshape(-1).astype(np.intp)
    else:
        actual = target.reshape(-1, classes).argmax(axis=-1)
    return predicted, actual, classes


class _Counts(graphnet.Metric):
    """Precision, recall and F1 from the confusion matrix of the whole set.

    With one output (a logit, ``> 0`` is positive, against 0/1 targets) the score is the
    positive class's; with several outputs (argmax against class ids or one-hot targets) it
    is the unweighted mean over the classes that occur in the targets or the predictions
    (macro, as sklearn). A score whose denominator is 0 counts as 0 (sklearn's
    ``zero_division=0``).
    """

    def reset(self) -> None:
        self.confusion: Array | None = None  # [actual, predicted] counts
        self.binary = False

    def update(self, prediction: Array, target: Array) -> None:
        predicted, actual, classes = _classes(prediction, target)
        counts = np.bincount(actual * classes + predicted, minlength=classes * classes)
        counts = counts[: classes * classes].reshape(classes, classes)
        self.binary = prediction.shape[-1] == 1
        self.confusion = counts if self.confusion is None else self.confusion + counts

    def result(self) -> float:
        if self.confusion is None:
            return float("nan")
        true_positives = np.diag(self.confusion).astype(np.float64)
        predicted = self.confusion.sum(axis=0).astype(np.float64)
        actual = self.confusion.sum(axis=1).astype(np.float64)
        scores = self.score(true_positives, predicted, actual)
        if self.binary:
            return float(scores[1])
        present = (predicted > 0) | (actual > 0)
        return float(scores[present].mean())

    @staticmethod
    def score(true_positives: Array, predicted: Array, actual: Array) -> Array:
        """Per class, from its true positives and its predicted and actual counts."""
        raise NotImplementedError


def _ratio(numerator: Array, denominator: Array) -> Array:
    """numerator / denominator, 0 where the denominator is 0."""
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


class Precision(_Counts):
    """Precision TP / (TP + FP): binary for one logit, macro over classes otherwise."""

    type = "precision"

    @staticmethod
    def score(true_positives: Array, predicted: Array, actual: Array) -> Array:
        return _ratio(true_positives, predicted)


class Recall(_Counts):
    """Recall TP / (TP + FN): binary for one logit, macro over classes otherwise."""

    type = "recall"

    @staticmethod
    def score(true_positives: Array, predicted: Array, actual: Array) -> Array:
        return _ratio(true_positives, actual)


class F1(_Counts):
    """F1 2·TP / (2·TP + FP + FN): binary for one logit, macro over classes otherwise."""

    type = "f1"

    @staticmethod
    def score(true_positives: Array, predicted: Array, actual: Array) -> Array:
        return _ratio(2 * true_positives, predicted + actual)


def _average_ranks(values: Array) -> Array:
    """The ranks (from 1) of ``values``, ties sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2.0  # the mean of ranks starts+1 .. ends
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


class AUC(graphnet.Metric):
    """Area under the ROC curve of one logit against 0/1 targets, over the whole set.

    The probability that a positive sample scores above a negative one, ties counting half
    (average ranks, as sklearn's roc_auc_score); NaN when the set holds only one class.
    """

    type = "auc"

    def reset(self) -> None:
        self.scores: list[Array] = []
        self.labels: list[Array] = []

    def update(self, prediction: Array, target: Array) -> None:
        if prediction.shape[-1] != 1:
            raise ValueError(
                f"auc takes one logit per sample, got predictions of shape {list(prediction.shape)}"
            )
        self.scores.append(prediction.reshape(-1).astype(np.float64))
        self.labels.append(target.reshape(-1) > 0.5)

    def result(self) -> float:
        if not self.scores:
            return float("nan")
        scores = np.concatenate(self.scores)
        positive = np.concatenate(self.labels)
        n_positive = int(positive.sum())
        n_negative = len(positive) - n_positive
        if not n_positive or not n_negative:
            return float("nan")
        rank_sum = _average_ranks(scores)[positive].sum()
        return float((rank_sum - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


@graphnet.hookimpl
def graphnet_metrics() -> list[type[graphnet.Metric]]:
    return [MAE, Accuracy, RMSE, R2, Precision, Recall, F1, AUC]
