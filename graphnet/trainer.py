"""The epoch loop: mini-batches, the optimizer step, metrics and validation.

A :class:`Trainer` owns what training adds to a network: the split data, the optimizer and its
state, the metrics, the learning-rate schedule, gradient clipping, early stopping and the
training generator (shuffling, dropout). It knows nothing of files: the run's orchestration
(:mod:`graphnet.run`) checkpoints what it hands out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from graphnet.base import Array, Optimizer, Schedule
from graphnet.calls import Caller
from graphnet.checkpoint import Rollback, Snapshot, Snapshots
from graphnet.dataset import Dataset
from graphnet.early_stopping import EarlyStopping
from graphnet.errors import GraphnetError, TrainingError
from graphnet.metering import Meters, MetricUse
from graphnet.network import Network
from graphnet.params import flat_views, shapes_of
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
        self.batch_size = spec.train.batch_size or self.n_train
        self.batches = -(-self.n_train // self.batch_size)  # optimizer steps per epoch
        self.whole_batch = self.batch_values(self.train_data, None)  # slot values, every sample
        self.steps_taken = 0  # optimizer steps applied (or begun) so far
        section = spec.train.optimizer
        self.optimizer_caller = Caller(
            f"optimizer {section.type!r}", spec.where(("train", "optimizer")), section.package
        )
        self.optimizer: Optimizer = section.make(self.optimizer_caller)
        state = self.optimizer_caller.call("init_state", self.optimizer.init_state, network.params)
        self.state: dict[str, Array] = dict(state)
        self.snapshots = Snapshots()
        self.meters = Meters(self._metrics())
        self.columns = spec.columns()
        self.schedule: Schedule | None = None
        self.history: list[dict[str, Any]] = []  # the records so far, kept for a schedule only
        if spec.train.lr_schedule is not None:
            plugged = spec.train.lr_schedule
            self.schedule_caller = Caller(
                f"schedule {plugged.type!r}", spec.where(("train", "lr_schedule")), plugged.package
            )
            self.schedule = plugged.make(self.schedule_caller)
            self.base_lr = float(spec.train.optimizer.options_model.lr)  # type: ignore[attr-defined]
        self.early = (
            EarlyStopping(spec.train.early_stopping, network)
            if spec.train.early_stopping is not None
            else None
        )
        # an epoch of one step with no plugin to call after it keeps the live arrays to fall
        # back to (see Rollback)
        self.rollback = Rollback(self.batches == 1 and not self.val_data and not self.meters.uses)

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
        """Slot values holding the batch ``index`` of ``arrays`` (all of them for ``None``)."""
        values: list[Any] = [None] * len(self.network.slots)
        slots = self.network.slots
        for name, array in arrays.items():
            values[slots[name]] = array if index is None else array[index]
        return values

    def snapshot(self, epoch: int, copy: bool = True) -> Snapshot:
        """The training state after ``epoch`` (see :meth:`Snapshots.take`)."""
        return self.snapshots.take(
            epoch, self.network, self.state, self.train_rng, copy, self._extra()
        )

    def keep_rollback(self, epoch: int) -> None:
        """Keep the state after ``epoch``, to checkpoint if the next epoch fails (see
        :class:`Rollback`)."""
        extra = None if self.rollback.live else self._extra()
        self.rollback.keep(epoch, self.network, self.state, self.train_rng, self.steps_taken, extra)

    def fallback(self) -> Snapshot | None:
        """After a failure: the state after the last complete epoch, if it was kept and still
        holds (an epoch of one step that failed after its step leaves none)."""
        return self.rollback.snapshot(
            self.network, self.state, self.train_rng, self.steps_taken, self._extra()
        )

    def _extra(self) -> dict[str, Array] | None:
        """The arrays of the training features to checkpoint with the parameters."""
        return self.early.arrays() if self.early is not None else None

    def set_lr(self, epoch: int) -> float:
        """The schedule's rate for ``epoch``, set on this trainer's optimizer."""
        assert self.schedule is not None
        value = self.schedule_caller.call(
            "lr", self.schedule.lr, epoch, self.base_lr, list(self.history)
        )
        lr = self.schedule_caller.number("lr", value)
        if not (math.isfinite(lr) and lr >= 0):
            raise self.schedule_caller.wrong("lr", f"returned {lr} for epoch {epoch}")
        self.optimizer.options.lr = lr
        return lr

    def clip(self, limit: float) -> None:
        """Scale the gradients so that their global L2 norm is at most ``limit``, as
        ``torch.nn.utils.clip_grad_norm_``: by ``limit / (norm + 1e-6)`` when that is < 1."""
        flat = self.network.grads.flat
        scale = limit / (math.sqrt(float(np.dot(flat, flat))) + 1e-6)
        if scale < 1:
            flat *= scale

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

    step_checked = False  # the optimizer was probed for updates in place, once per run

    def checked_step(self) -> None:
        """The first optimizer step of a run, after a probe of the optimizer: a new instance
        steps on small copies of the parameters made read-only. One that updates in place
        fails to write (as it should here); one that finishes has rebound a name or replaced
        an array of ``params``, and the real step would leave the network untouched."""
        section = self.spec.train.optimizer
        probe = section.make(self.optimizer_caller)
        dtype = self.network.dtype
        shapes = {k: (1,) * len(shape) for k, shape in shapes_of(self.network.params).items()}
        params, grads = flat_views(shapes, dtype), flat_views(shapes, dtype)
        params.flat[:], grads.flat[:] = 1, 1
        try:
            state = dict(probe.init_state(params))
            arrays = dict(params)
            for array in (params.flat, *params.values()):
                array.flags.writeable = False
            probe.step(params, grads, state)
        except Exception:  # it wrote in place (read-only), or failed: the real step tells
            pass
        else:
            replaced = [k for k, array in arrays.items() if params.get(k) is not array]
            if replaced or set(params) != set(arrays):
                raise self.optimizer_caller.wrong(
                    "step",
                    f"replaced params[{(replaced or sorted(set(params) ^ set(arrays)))[0]!r}] "
                    "instead of updating it in place (`p -= ...`, never `params[key] = ...`)",
                )
            if params:
                raise self.optimizer_caller.wrong(
                    "step",
                    "wrote into none of the arrays of `params`: it must update them in place "
                    "(`p -= lr * g`, not `p = p - lr * g`)",
                )
        self.step_checked = True
        network = self.network
        self.optimizer_caller.call(
            "step", self.optimizer.step, network.params, network.grads, self.state
        )

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        started = time.perf_counter()
        lr = self.set_lr(epoch) if self.schedule is not None else None
        n, batch_size, batches = self.n_train, self.batch_size, self.batches
        shuffle = self.spec.train.shuffle and batches > 1
        order = self.train_rng.permutation(n) if shuffle else None
        total = 0.0
        meters = self.meters
        metered = bool(meters.uses)
        if metered:
            meters.start()
        clip_norm = self.spec.train.clip_grad_norm
        step = self.optimizer.step
        params, grads, state = self.network.params, self.network.grads, self.state
        for batch, start in enumerate(range(0, n, batch_size)):
            end = min(start + batch_size, n)
            size = end - start
            if batches == 1:  # the whole training set: its arrays as they are
                values = list(self.whole_batch)
            else:
                index = slice(start, end) if order is None else order[start:end]
                values = self.batch_values(self.train_data, index)
            try:
                loss = self.network.train_step(values)
            except GraphnetError as error:
                raise error.add_context(after=f" (in epoch {epoch}, batch {batch + 1})") from None
            if not math.isfinite(loss):
                raise self.diverged(epoch, batch + 1, loss, values)
            self.stop.check(epoch)
            if clip_norm is not None:
                self.clip(clip_norm)
            self.steps_taken += 1  # from here on the parameters may change
            if self.step_checked:
                self.optimizer_caller.call("step", step, params, grads, state)
            else:
                self.checked_step()
            total += loss * size
            if metered:
                meters.add(values, size)
            if self.on_batch is not None:
                self.on_batch(epoch, batch + 1, batches, loss)
        record: dict[str, Any] = {"epoch": epoch, "loss": total / n}
        if metered:
            record.update(meters.results(n, epoch))
        if self.val_data:
            record.update(self.evaluate(batch_size, epoch))
        if lr is not None:
            record["lr"] = lr
        record["seconds"] = time.perf_counter() - started
        if metered:  # in the columns' order (each val_<metric> beside its metric)
            record = {c: record[c] for c in self.columns}
        if self.schedule is not None:
            self.history.append(record)
        return record

    def evaluate(self, batch_size: int, epoch: int) -> dict[str, float]:
        n = len(next(iter(self.val_data.values())))
        total = 0.0
        meters = self.meters
        metered = bool(meters.uses)
        if metered:
            meters.start()
        for start in range(0, n, batch_size):
            values = self.batch_values(self.val_data, slice(start, start + batch_size))
            size = len(values[self.network.slots[next(iter(self.val_data))]])
            loss, _ = self.network.losses(values, training=False)
            total += loss * size
            if metered:
                meters.add(values, size)
        out = {"val_loss": total / n}
        if metered:
            out.update(meters.results(n, epoch, "val_"))
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
