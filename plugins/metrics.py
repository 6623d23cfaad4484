"""Built-in metrics: mae and accuracy."""

from __future__ import annotations

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


@graphnet.hookimpl
def graphnet_metrics() -> list[type[graphnet.Metric]]:
    return [MAE, Accuracy]
