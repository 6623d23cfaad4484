"""The epoch loop: mini-batches, the optimizer step, metrics and validation.

A :class:`Trainer` owns what training adds to a network: the split data, the optimizer and its
state, the metrics and the training generator (shuffling, dropout). It knows nothing of files:
the run's orchestration (:mod:`graphnet.run`) checkpoints what it hands out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graphnet.base import Array, Metric, Optimizer
from graphnet.calls import Caller
from graphnet.checkpoint import Snapshot, Snapshots
from graphnet.dataset import Dataset
from graphnet.errors import GraphnetError, TrainingError
from graphnet.network import Network
from graphnet.spec import Spec
from graphnet.stop import Stop


class Reporter:
    """What a run tells as it goes; the command line prints it, the Python API keeps quiet."""

    def start(self, run_dir: Path, info: Mapping[str, Any]) -> None:
        """Training is about to begin (``info``: epochs, first epoch, samples, parameters)."""

    def epoch(self, record: Mapping[str, Any]) -> None:
        """One epoch is done."""

    def batch(self, epoch: int, batch: int, batches: int, loss: float) -> None:
        """Batch ``batch`` of ``batches`` of ``epoch`` took its step; ``loss`` is its loss.

        Called only for reporters that override it, so a silent run pays nothing per batch."""


@dataclass
class MetricUse:
    """One metric on one loss's prediction and target: its column, instance and slots."""

    column: str
    metric: Metric
    slots: tuple[int, int]
    caller: Caller


class Trainer:
    """Trains one network on one data set, an epoch at a time."""

    stop: Stop
    on_batch: Callable[[int, int, int, float], None] | None = None

    def __init__(
        self,
        spec: Spec,
        network: Network,
        data: Dataset,
        rngs: dict[str, np.random.Generator],
    ):
        self.spec = spec
        self.network = network
        self.train_rng = rngs["train"]
        network.set_rng(self.train_rng)
        self.train_data, self.val_data = data.train, data.validation
        self.n_train = len(next(iter(self.train_data.values())))
        section = spec.train.optimizer
        self.optimizer_caller = Caller(
            f"optimizer {section.type!r}", spec.where(("train", "optimizer")), section.package
        )
        self.optimizer: Optimizer = section.make(self.optimizer_caller)
        state = self.optimizer_caller.call("init_state", self.optimizer.init_state, network.params)
        self.state: dict[str, Array] = dict(state)
        self.snapshots = Snapshots()
        self.metrics = self._metrics()
        self.columns = ["epoch", "loss"] + (["val_loss"] if self.val_data else [])
        for use in self.metrics:
            self.columns += [use.column] + ([f"val_{use.column}"] if self.val_data else [])
        self.columns.append("seconds")

    def _metrics(self) -> list[MetricUse]:
        uses = []
        losses = self.network.graph.losses
        for i, name in enumerate(self.spec.train.metrics):
            entry = self.spec.registry.entry("metric", name)
            where = self.spec.where(("train", "metrics", i))
            for loss in losses:
                column = name if len(losses) == 1 else f"{loss.inputs[0]}_{name}"
                caller = Caller(f"metric {column!r}", where, entry.package)
                slots = (self.network.slots[loss.inputs[0]], self.network.slots[loss.inputs[-1]])
                uses.append(MetricUse(column, caller.call("__init__", entry.cls), slots, caller))
        return uses

    def batch_values(self, arrays: Mapping[str, Array], index: Any) -> list[Any]:
        values: list[Any] = [None] * len(self.network.slots)
        slots = self.network.slots
        for name, array in arrays.items():
            values[slots[name]] = array[index]
        return values

    def snapshot(self, epoch: int, copy: bool = True) -> Snapshot:
        """The training state after ``epoch`` (see :meth:`Snapshots.take`)."""
        return self.snapshots.take(epoch, self.network, self.state, self.train_rng, copy)

    def check_parameters(self, epoch: int) -> None:
        """Stop the run if an update has made a parameter (or a buffer) NaN or Inf."""
        network = self.network
        if not (np.isfinite(network.params.flat).all() and np.isfinite(network.buffers.flat).all()):
            broken = next(k for k, p in network.arrays().items() if not np.isfinite(p).all())
            raise TrainingError(
                f"parameter {broken!r} became NaN or Inf in epoch {epoch} (an update overflowed). "
                "Training diverged: lower train.optimizer.lr, or check the data's scale"
            )

    # -- the loop ----------------------------------------------------------------------------

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        started = time.perf_counter()
        batch_size = self.spec.train.batch_size or self.n_train
        shuffle = self.spec.train.shuffle and batch_size < self.n_train
        order = self.train_rng.permutation(self.n_train) if shuffle else None
        total = 0.0
        sums = [0.0] * len(self.metrics)
        n = self.n_train
        step = self.optimizer.step
        params, grads, state = self.network.params, self.network.grads, self.state
        for batch, start in enumerate(range(0, n, batch_size)):
            end = min(start + batch_size, n)
            size = end - start
            values = self.batch_values(
                self.train_data, slice(start, end) if order is None else order[start:end]
            )
            try:
                loss = self.network.train_step(values)
            except GraphnetError as error:
                raise error.add_context(after=f" (in epoch {epoch}, batch {batch + 1})") from None
            if not math.isfinite(loss):
                raise self.diverged(epoch, batch + 1, loss, values)
            self.stop.check(epoch)
            self.optimizer_caller.call("step", step, params, grads, state)
            total += loss * size
            for i, use in enumerate(self.metrics):
                sums[i] += self.metric(use, values) * size
            if self.on_batch is not None:
                self.on_batch(epoch, batch + 1, -(-self.n_train // batch_size), loss)
        record: dict[str, Any] = {"epoch": epoch, "loss": total / self.n_train}
        if self.val_data:
            record.update(self.evaluate(batch_size))
        for i, use in enumerate(self.metrics):
            record[use.column] = sums[i] / self.n_train
        record["seconds"] = time.perf_counter() - started
        return {c: record[c] for c in self.columns}

    def metric(self, use: MetricUse, values: list[Any]) -> float:
        """One metric of one batch."""
        value = use.caller.call(
            "compute", use.metric.compute, values[use.slots[0]], values[use.slots[1]]
        )
        try:
            return float(value)
        except (TypeError, ValueError):
            raise use.caller.wrong(
                "compute", f"returned {type(value).__name__}, not a number"
            ) from None

    def evaluate(self, batch_size: int) -> dict[str, float]:
        n = len(next(iter(self.val_data.values())))
        total = 0.0
        sums = [0.0] * len(self.metrics)
        for start in range(0, n, batch_size):
            values = self.batch_values(self.val_data, slice(start, start + batch_size))
            size = len(values[self.network.slots[next(iter(self.val_data))]])
            loss, _ = self.network.losses(values, training=False)
            total += loss * size
            for i, use in enumerate(self.metrics):
                sums[i] += self.metric(use, values) * size
        out = {"val_loss": total / n}
        out.update({f"val_{use.column}": sums[i] / n for i, use in enumerate(self.metrics)})
        return out

    def diverged(self, epoch: int, batch: int, loss: float, values: list[Any]) -> TrainingError:
        node = self.network.first_non_finite(values)
        culprit = (
            f"; the first node whose output is not finite is {node!r}"
            if node
            else "; every node's output is finite: the loss itself overflowed"
        )
        return TrainingError(
            f"the loss became {loss} in epoch {epoch}, batch {batch}{culprit}. "
            "Training diverged: lower train.optimizer.lr, or check the data's scale"
        )
