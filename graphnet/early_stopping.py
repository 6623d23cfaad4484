"""``train.early_stopping``: Keras' EarlyStopping over a column of ``metrics.csv``.

An epoch improves when its value beats the best so far by more than ``min_delta`` (below
``best - min_delta`` in mode ``min``, above ``best + min_delta`` in mode ``max``; a NaN never
improves). After ``patience`` epochs in a row without improvement the run stops, so its last
epoch is the best epoch + ``patience``. The parameters and buffers of the best epoch are kept
in memory for ``best.npz``. Everything here is checkpointed state (:meth:`arrays`,
:meth:`load`), so a resumed run stops where an uninterrupted one stops.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from graphnet.base import Array
from graphnet.errors import DataError
from graphnet.network import Network
from graphnet.params import cut, shapes_of
from graphnet.spec import EarlyStoppingSpec

PREFIX = "early_stopping/"  # the keys of its arrays in checkpoint.npz


class EarlyStopping:
    """The counters of early stopping and a copy of the best epoch's parameters."""

    def __init__(self, options: EarlyStoppingSpec, network: Network) -> None:
        self.options = options
        self.network = network
        self.best = math.inf if options.mode == "min" else -math.inf
        self.best_epoch = 0  # 0: no epoch has improved yet
        self.wait = 0  # epochs since the best one
        self.flat = network.params.flat.copy()
        self.buffers = network.buffers.flat.copy()
        self.unsaved = False  # the best changed since best.npz was last written

    @property
    def stopped(self) -> bool:
        """Whether ``patience`` epochs have gone by without improvement."""
        return self.wait >= self.options.patience

    def improves(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by more than ``min_delta``."""
        if self.options.mode == "min":
            return value + self.options.min_delta < self.best
        return value - self.options.min_delta > self.best

    def update(self, record: Mapping[str, Any]) -> bool:
        """Take the epoch of ``record`` into account; whether the run should stop now."""
        value = float(record[self.options.monitor])
        if self.improves(value):
            self.best, self.best_epoch, self.wait = value, int(record["epoch"]), 0
            np.copyto(self.flat, self.network.params.flat)
            np.copyto(self.buffers, self.network.buffers.flat)
            self.unsaved = True
        else:
            self.wait += 1
        return self.stopped

    def best_arrays(self) -> dict[str, Array]:
        """The best epoch's parameters and buffers, keyed as ``weights.npz``."""
        network = self.network
        return {
            **cut(self.flat, shapes_of(network.params)),
            **cut(self.buffers, shapes_of(network.buffers)),
        }

    def arrays(self) -> dict[str, Array]:
        """The state to checkpoint (the live arrays of the best parameters)."""
        return {
            f"{PREFIX}best": np.array(self.best),
            f"{PREFIX}best_epoch": np.array(self.best_epoch),
            f"{PREFIX}wait": np.array(self.wait),
            f"{PREFIX}params": self.flat,
            f"{PREFIX}buffers": self.buffers,
        }

    def load(self, arrays: Mapping[str, Any], where: str) -> None:
        """Restore the state of a checkpoint's arrays; a missing or misshapen one is named."""
        for key, like in self.arrays().items():
            saved = arrays.get(key)
            if saved is None or np.shape(saved) != like.shape:
                raise DataError(
                    f"checkpoint is damaged: {key!r} is missing or of the wrong shape "
                    "(it holds the state of train.early_stopping)",
                    where,
                )
        np.copyto(self.flat, arrays[f"{PREFIX}params"], casting="unsafe")
        np.copyto(self.buffers, arrays[f"{PREFIX}buffers"], casting="unsafe")
        self.best = float(arrays[f"{PREFIX}best"])
        self.best_epoch = int(arrays[f"{PREFIX}best_epoch"])
        self.wait = int(arrays[f"{PREFIX}wait"])
        self.unsaved = self.best_epoch > 0  # best.npz may be missing or newer than the checkpoint
