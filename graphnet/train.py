"""Training: data, mini-batches, the optimizer, validation, metrics and the run folder.

Randomness comes from one seed split into independent streams (data, validation split,
training) and a generator per node for its initial weights, so changing the data or the order
of the nodes does not change them. The training stream (shuffling, dropout) is saved in every
checkpoint, so a resumed run continues bit for bit.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graphnet.base import Array, Metric, Optimizer
from graphnet.errors import (
    DataError,
    GraphnetError,
    GraphnetWarning,
    Interrupted,
    PluginError,
    SpecError,
    TrainingError,
)
from graphnet.executor import Network
from graphnet.graph import build_graph
from graphnet.plots import try_draw_run
from graphnet.runfolder import RunFolder, default_folder
from graphnet.spec import Spec, load_spec

STREAMS = ("data", "split", "train")


def streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators for the data, the validation split and training (shuffling,
    dropout); each node's initial parameters have a generator of their own (``init_rng``)."""
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {
        name: np.random.default_rng(child) for name, child in zip(STREAMS, children, strict=True)
    }


def build(spec: Spec) -> Network:
    """The network of a validated spec, with freshly initialised parameters."""
    graph = spec._graph if spec._graph is not None else build_graph(spec)
    return Network(graph)


def load_data(spec: Spec, rng: np.random.Generator) -> dict[str, Array]:
    """The spec's data set, checked against its inputs and cast to its dtype."""
    where = spec.where(("data",))
    if spec.data is None:
        raise SpecError("the spec has no `data:` section; training needs one", spec.where())
    source = spec.data.plugin(spec.data.options_model)
    try:
        arrays = source.load(spec.base_dir, rng)
    except GraphnetError as error:
        error.where = error.where or where
        raise
    except Exception as error:
        raise DataError(
            f"data source {spec.data.source!r} failed: {type(error).__name__}: {error}", where
        ) from None
    dtype = np.dtype(spec.dtype)
    out: dict[str, Array] = {}
    count: tuple[str, int] | None = None
    for name, input_spec in spec.inputs.items():
        if name not in arrays:
            given = ", ".join(sorted(arrays)) or "nothing"
            raise DataError(f"the data has no array for input {name!r} (it gives: {given})", where)
        raw = np.asarray(arrays[name])
        if not (np.issubdtype(raw.dtype, np.number) or raw.dtype == bool) or np.iscomplexobj(raw):
            raise DataError(f"input {name!r}: the data is {raw.dtype}, not real numbers", where)
        shape = tuple(input_spec.shape)
        if raw.ndim != len(shape) + 1 or raw.shape[1:] != shape:
            raise DataError(
                f"input {name!r}: per-sample shape {list(raw.shape[1:])} in the data "
                f"(array {list(raw.shape)}), the spec says {list(shape)}",
                where,
            )
        array = np.ascontiguousarray(raw, dtype=dtype)
        if not len(array):
            raise DataError(f"the data set is empty: input {name!r} has no samples", where)
        bad = _first_non_finite(array)
        if bad is not None:
            raise DataError(f"input {name!r}: sample {bad} holds NaN or Inf", where)
        if count is not None and len(array) != count[1]:
            raise DataError(
                f"input {name!r} has {len(array)} samples, input {count[0]!r} has {count[1]}", where
            )
        count = (name, len(array))
        out[name] = array
    if count is None or count[1] == 0:
        raise DataError("the data set is empty", where)
    return out


def _first_non_finite(array: Array, chunk: int = 4096) -> int | None:
    """The first sample holding NaN or Inf, if any. A float64 sum settles the common case with
    no temporary array; only when it is not finite are the samples scanned, a chunk at a time."""
    if math.isfinite(float(array.sum(dtype=np.float64))):
        return None
    rows = array.reshape(len(array), -1)
    for start in range(0, len(rows), chunk):
        bad = np.flatnonzero(~np.isfinite(rows[start : start + chunk]).all(axis=1))
        if bad.size:
            return start + int(bad[0])
    return None  # the sum overflowed, but every value is finite


def split(
    arrays: dict[str, Array], fraction: float, rng: np.random.Generator
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Hold out ``fraction`` of the samples, chosen at random, for validation."""
    n = len(next(iter(arrays.values())))
    if fraction <= 0:
        return arrays, {}
    n_val = max(1, round(n * fraction))
    if n_val >= n:
        raise DataError(f"{fraction} of {n} samples leaves none to train on")
    order = rng.permutation(n)
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    return {k: v[train] for k, v in arrays.items()}, {k: v[val] for k, v in arrays.items()}


class History(list[dict[str, Any]]):
    """One record per epoch (the columns of ``metrics.csv``); ``run_dir`` is the run folder."""

    run_dir: Path


@dataclass
class _MetricUse:
    column: str
    metric: Metric
    slots: tuple[int, int]


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
class _Snapshot:
    epoch: int
    flat: Array
    state: dict[str, Array]
    rng: Mapping[str, Any]


class _Stop:
    """Catches SIGINT and SIGTERM while training: the current step finishes, then the run stops
    at a clean point. A second signal acts at once, as usual."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signal_number = 0
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                self.previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)

    def _handle(self, number: int, frame: Any) -> None:
        self.signal_number = number
        signal.signal(number, self.previous.get(number, signal.SIG_DFL))

    def check(self, epoch: int) -> None:
        if self.signal_number:
            name = signal.Signals(self.signal_number).name
            raise Interrupted(f"interrupted by {name} in epoch {epoch}", self.signal_number)


class _Trainer:
    stop: _Stop
    _kept: tuple[Array, dict[str, Array]] | None = None  # the buffers of `snapshot`
    on_batch: Callable[[int, int, int, float], None] | None = None

    def __init__(
        self,
        spec: Spec,
        network: Network,
        data: dict[str, Array],
        rngs: dict[str, np.random.Generator],
    ):
        self.spec = spec
        self.network = network
        self.train_rng = rngs["train"]
        network.set_rng(self.train_rng)
        try:
            self.train_data, self.val_data = split(
                data, spec.data.validation if spec.data else 0.0, rngs["split"]
            )
        except DataError as error:
            error.where = error.where or spec.where(("data", "validation"))
            raise
        self.n_train = len(next(iter(self.train_data.values())))
        optimizer_spec = spec.train.optimizer
        self.optimizer: Optimizer = optimizer_spec.plugin(optimizer_spec.options_model)
        self.state = self._init_state()
        self.metrics = self._metrics()
        self.columns = ["epoch", "loss"] + (["val_loss"] if self.val_data else [])
        for use in self.metrics:
            self.columns += [use.column] + ([f"val_{use.column}"] if self.val_data else [])
        self.columns.append("seconds")

    def _init_state(self) -> dict[str, Array]:
        try:
            return dict(self.optimizer.init_state(self.network.params))
        except Exception as error:
            raise TrainingError(
                f"optimizer {self.spec.train.optimizer.type!r}: init_state failed: {error}",
                self.spec.where(("train", "optimizer")),
            ) from None

    def _metrics(self) -> list[_MetricUse]:
        uses = []
        for name in self.spec.train.metrics:
            cls = self.spec.registry.get("metric", name)
            for loss in self.network.graph.losses:
                column = name if len(self.network.graph.losses) == 1 else f"{loss.inputs[0]}_{name}"
                slots = (self.network.slots[loss.inputs[0]], self.network.slots[loss.inputs[-1]])
                uses.append(_MetricUse(column, cls(), slots))
        return uses

    def _values(self, arrays: Mapping[str, Array], index: Any) -> list[Any]:
        values: list[Any] = [None] * len(self.network.slots)
        slots = self.network.slots
        for name, array in arrays.items():
            values[slots[name]] = array[index]
        return values

    # -- checkpoints -------------------------------------------------------------------------

    def snapshot(self, epoch: int, copy: bool = True) -> _Snapshot:
        """The training state after ``epoch``: parameters, optimizer state and the RNG (the live
        arrays themselves with ``copy=False``, to be written before training goes on).

        Copies go into buffers kept for the purpose, so a snapshot per epoch allocates nothing;
        each copy overwrites the previous one.
        """
        flat, state = self.network.params.flat, self.state
        if copy:
            if self._kept is None or self._kept[1].keys() != state.keys():
                self._kept = (
                    np.empty_like(flat),
                    {k: np.array(v, copy=True) for k, v in state.items()},
                )
            np.copyto(self._kept[0], flat)
            for key, value in state.items():
                np.copyto(self._kept[1][key], value)
            flat, state = self._kept
        return _Snapshot(epoch, flat, state, self.train_rng.bit_generator.state)

    def check_parameters(self, epoch: int) -> None:
        """Stop the run if an update has made a parameter NaN or Inf."""
        if not np.isfinite(self.network.params.flat).all():
            broken = next(k for k, p in self.network.params.items() if not np.isfinite(p).all())
            raise TrainingError(
                f"parameter {broken!r} became NaN or Inf in epoch {epoch} (an update overflowed). "
                "Training diverged: lower train.optimizer.lr, or check the data's scale"
            )

    def checkpoint(self, snapshot: _Snapshot) -> dict[str, Any]:
        """A snapshot as the arrays of ``checkpoint.npz``."""
        arrays: dict[str, Any] = {}
        offset = 0
        for key, view in self.network.params.items():
            arrays[f"param/{key}"] = snapshot.flat[offset : offset + view.size].reshape(view.shape)
            offset += view.size
        arrays.update({f"state/{k}": v for k, v in snapshot.state.items()})
        arrays["epoch"] = np.array(snapshot.epoch)
        arrays["rng"] = np.array(json.dumps(snapshot.rng))
        return arrays

    def restore(self, arrays: Mapping[str, Any], where: str) -> int:
        params = {k[len("param/") :]: v for k, v in arrays.items() if k.startswith("param/")}
        self.network.load_weights(params)
        for key, target in self.state.items():
            saved = arrays.get(f"state/{key}")
            if saved is None or np.shape(saved) != np.shape(target):
                raise DataError(f"optimizer state {key!r} missing or of the wrong shape", where)
            self.state[key] = np.array(saved, dtype=np.asarray(target).dtype)
        try:
            self.train_rng.bit_generator.state = json.loads(str(arrays["rng"]))
            return int(arrays["epoch"])
        except (KeyError, ValueError, TypeError) as error:
            raise DataError(f"checkpoint is damaged: {error}", where) from None

    # -- the loop ----------------------------------------------------------------------------

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        started = time.perf_counter()
        batch_size = self.spec.train.batch_size or self.n_train
        shuffle = self.spec.train.shuffle and batch_size < self.n_train
        order = self.train_rng.permutation(self.n_train) if shuffle else None
        total = 0.0
        sums = [0.0] * len(self.metrics)
        n = self.n_train
        for batch, start in enumerate(range(0, n, batch_size)):
            end = min(start + batch_size, n)
            size = end - start
            values = self._values(
                self.train_data, slice(start, end) if order is None else order[start:end]
            )
            try:
                result = self.network.train_step(values)
            except GraphnetError as error:
                error.message += f" (in epoch {epoch}, batch {batch + 1})"
                raise
            if not math.isfinite(result.total):
                raise self.diverged(epoch, batch + 1, result.total, values)
            self.stop.check(epoch)
            try:
                self.optimizer.step(self.network.params, result.grads, self.state)
            except Exception as error:
                raise TrainingError(
                    f"optimizer {self.spec.train.optimizer.type!r}: step failed: "
                    f"{type(error).__name__}: {error}",
                    self.spec.where(("train", "optimizer")),
                ) from error
            total += result.total * size
            for i, use in enumerate(self.metrics):
                sums[i] += self.metric(use, values) * size
            if self.on_batch is not None:
                self.on_batch(epoch, batch + 1, -(-self.n_train // batch_size), result.total)
        record: dict[str, Any] = {"epoch": epoch, "loss": total / self.n_train}
        if self.val_data:
            record.update(self.evaluate(batch_size))
        for i, use in enumerate(self.metrics):
            record[use.column] = sums[i] / self.n_train
        record["seconds"] = time.perf_counter() - started
        return {c: record[c] for c in self.columns}

    def metric(self, use: _MetricUse, values: list[Any]) -> float:
        """One metric of one batch; a metric plugin that fails is named."""
        try:
            return float(use.metric.compute(values[use.slots[0]], values[use.slots[1]]))
        except Exception as error:
            index = self.spec.train.metrics.index(type(use.metric).type.lower())
            raise PluginError(
                f"metric {use.column!r}: compute failed: {type(error).__name__}: {error}",
                self.spec.where(("train", "metrics", index)),
            ) from None

    def evaluate(self, batch_size: int) -> dict[str, float]:
        n = len(next(iter(self.val_data.values())))
        total = 0.0
        sums = [0.0] * len(self.metrics)
        for start in range(0, n, batch_size):
            values = self._values(self.val_data, slice(start, start + batch_size))
            size = len(values[self.network.slots[next(iter(self.val_data))]])
            loss, _, _ = self.network.losses(values, training=False)
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


def _differences(saved: Any, current: Any, path: str = "") -> list[str]:
    if isinstance(saved, dict) and isinstance(current, dict):
        out = []
        for key in dict.fromkeys([*saved, *current]):
            sub = f"{path}.{key}" if path else str(key)
            if sub == "train.epochs":
                continue
            if key not in saved or key not in current:
                out.append(f"{sub} is {'new' if key not in saved else 'gone'}")
            else:
                out += _differences(saved[key], current[key], sub)
        return out
    if isinstance(saved, list) and isinstance(current, list) and len(saved) == len(current):
        return [
            d
            for i, (a, b) in enumerate(zip(saved, current, strict=True))
            for d in _differences(a, b, f"{path}[{i}]")
        ]
    return [] if saved == current else [f"{path}: {saved!r} in the run, {current!r} now"]


def train(
    spec: Spec | str | Path,
    out_dir: str | Path | None = None,
    weights: str | Path | Mapping[str, Any] | None = None,
    *,
    resume: bool = False,
    reporter: Reporter | None = None,
) -> History:
    """Train as ``graphnet run`` does: write the run folder and return one record per epoch."""
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    folders: list[Path] = []
    try:
        return _train(spec, out_dir, weights, resume, reporter or Reporter(), folders)
    finally:  # the training arrays are released by now: drawing does not add to the peak
        if folders:
            try_draw_run(folders[0])


def _train(
    spec: Spec,
    out_dir: str | Path | None,
    weights: str | Path | Mapping[str, Any] | None,
    resume: bool,
    reporter: Reporter,
    folders: list[Path],
) -> History:
    rngs = streams(spec.seed)
    network = build(spec)
    trainer = _Trainer(spec, network, load_data(spec, rngs["data"]), rngs)
    if weights is not None:
        if resume:
            raise SpecError(
                "--weights and --resume do not go together: a resumed run starts from its checkpoint"
            )
        network.load_weights(weights)

    assert spec.name is not None
    folder = RunFolder(out_dir if out_dir is not None else default_folder(spec.name, resume))
    first_epoch = 1
    resolved = spec.to_dict()
    saved_spec = folder.read_spec() if resume and folder.holds_run() else None
    if saved_spec is not None:
        changed = _differences(saved_spec, resolved)
        if changed:
            raise SpecError(
                "--resume: the spec differs from the run's in "
                + "; ".join(changed)
                + " (only train.epochs may change)",
                str(folder.file("spec.yaml")),
            )
        checkpoint = folder.read_checkpoint()
        if checkpoint is not None:
            first_epoch = trainer.restore(checkpoint, str(folder.file("checkpoint.npz"))) + 1
        folder.truncate_metrics(trainer.columns, first_epoch - 1)
    if resume and first_epoch == 1:
        warnings.warn(
            f"{folder.path}: --resume: no checkpoint to continue from; training from epoch 1",
            GraphnetWarning,
            stacklevel=2,
        )
    folder.prepare(resume)
    folders.append(folder.path)
    folder.write_spec(resolved)

    history = History(folder.read_metrics() if first_epoch > 1 else [])
    history.run_dir = folder.path
    epochs = spec.train.epochs
    reporter.start(
        folder.path,
        {
            "epochs": epochs,
            "first_epoch": first_epoch,
            "samples": trainer.n_train,
            "validation": len(next(iter(trainer.val_data.values()))) if trainer.val_data else 0,
            "parameters": sum(p.size for p in network.params.values()),
        },
    )
    if getattr(type(reporter), "batch", Reporter.batch) is not Reporter.batch:
        trainer.on_batch = reporter.batch
    pending: list[dict[str, Any]] = []
    last_write = time.monotonic()
    saved_epoch = first_epoch - 1  # the epoch whose state checkpoint.npz holds (0: none yet)
    snapshot: _Snapshot | None = None
    with _Stop() as trainer.stop, np.errstate(all="ignore"):  # non-finite values are caught
        try:
            for epoch in range(first_epoch, epochs + 1):
                # the state after the last complete epoch, unless checkpoint.npz holds it already
                snapshot = trainer.snapshot(epoch - 1) if saved_epoch != epoch - 1 else None
                trainer.stop.check(epoch)
                record = trainer.run_epoch(epoch)
                history.append(record)
                pending.append(record)
                reporter.epoch(record)
                if epoch == epochs or time.monotonic() - last_write >= spec.train.checkpoint_every:
                    trainer.check_parameters(epoch)  # a checkpoint never holds NaN or Inf
                    folder.write_checkpoint(trainer.checkpoint(trainer.snapshot(epoch, copy=False)))
                    folder.append_metrics(trainer.columns, pending)
                    pending.clear()
                    saved_epoch, last_write = epoch, time.monotonic()
        except Exception as error:  # whatever stopped the run, keep its complete epochs
            kept = _keep_last_complete(
                folder, trainer.columns, pending, trainer.checkpoint(snapshot) if snapshot else None
            )
            if isinstance(error, GraphnetError) and (kept or error.exit_code != 2):
                error.message += (
                    f"; the run folder keeps epoch {kept}" if kept else "; no epoch was complete"
                )
            if isinstance(error, Interrupted):
                error.where = str(folder.path)
            raise
    folder.write_weights(network.params)
    return history


def _keep_last_complete(
    folder: RunFolder,
    columns: list[str],
    pending: list[dict[str, Any]],
    snapshot: dict[str, Any] | None,
) -> int:
    """After a failure: the checkpoint and weights of the last complete epoch; its number."""
    try:
        folder.append_metrics(columns, pending)
        finite = snapshot is not None and all(
            np.isfinite(v).all() for k, v in snapshot.items() if k.startswith(("param/", "state/"))
        )
        if snapshot is not None and finite and int(snapshot["epoch"]) >= 1:
            folder.write_checkpoint(snapshot)
        last = folder.read_checkpoint()
        if last is None:
            return 0
        folder.write_weights(
            {k[len("param/") :]: v for k, v in last.items() if k.startswith("param/")}
        )
        return int(last["epoch"])
    except GraphnetError:  # the folder cannot be written: report the first failure, not this one
        return 0
