"""Built-in metrics: ``mae``."""

from __future__ import annotations

import numpy as np

import graphnet
from graphnet.base import Array


class MAE(graphnet.Metric):
    """Mean absolute error: mean(|prediction - target|)."""

    type = "mae"

    def compute(self, prediction: Array, target: Array) -> float:
        return float(np.abs(prediction - target).mean())


@graphnet.hookimpl
def graphnet_metrics() -> list[type[graphnet.Metric]]:
    return [MAE]
