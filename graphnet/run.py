"""One run, as ``graphnet run`` does it: data, network and trainer, the run folder, checkpoints,
``--resume``, and what is kept when a run fails.

This module only orchestrates: the data set is :mod:`graphnet.dataset`'s, the epoch loop
:mod:`graphnet.trainer`'s, the files :mod:`graphnet.runfolder`'s; the picture of the losses is
drawn at the end (:mod:`graphnet.plots`, imported only then).
"""

from __future__ import annotations

import math
import signal
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, overload

import numpy as np

from graphnet.checkpoint import checkpoint_arrays, differences, restore
from graphnet.dataset import prepare, streams
from graphnet.early_stopping import PREFIX, EarlyStopping
from graphnet.errors import GraphnetError, GraphnetWarning, Interrupted, SpecError
from graphnet.evaluation import test_scores
from graphnet.instances import saved
from graphnet.network import build
from graphnet.runfolder import CHECKPOINT, SPEC, RunFolder, default_folder
from graphnet.spec import Spec
from graphnet.stop import Stop
from graphnet.trainer import Reporter, Trainer

# rows of metrics.csv kept in memory between checkpoints at the most; more are written out (rows
# past the checkpoint are dropped by --resume and computed again)
PENDING_ROWS = 256


class History(Sequence[dict[str, Any]]):
    """One record per epoch (the columns of ``metrics.csv``); ``run_dir`` is the run folder.

    The records are read from ``metrics.csv`` when first asked for: a run keeps none of them
    in memory, however many epochs it has."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.test: dict[str, float] | None = None  # the test split's scores, when it has one
        self._records: list[dict[str, Any]] | None = None

    def _read(self) -> list[dict[str, Any]]:
        if self._records is None:
            self._records = RunFolder(self.run_dir).read_metrics()
        return self._records

    def __len__(self) -> int:
        return len(self._read())

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        return self._read()[index]

    @property
    def results(self) -> dict[str, Any] | None:
        """The run's ``results.json`` (None before the run has ended)."""
        return RunFolder(self.run_dir).read_results()

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented

    __hash__ = None  # type: ignore[assignment]


def train(
    spec: Spec,
    out_dir: str | Path | None = None,
    weights: str | Path | Mapping[str, Any] | None = None,
    *,
    resume: bool = False,
    reporter: Reporter | None = None,
    names: Mapping[str, str] | None = None,
    loaded: Mapping[str, Mapping[str, Any]] | None = None,
    draw: bool = True,
    on_checkpoint: Callable[[Path, int], None] | None = None,
) -> History:
    """Train as ``graphnet run`` does: write the run folder and return one record per epoch.

    ``names`` says how messages name the arguments (``out_dir``, ``weights``, ``resume``):
    the Python API's own names by default, the command line's flags from ``graphnet run``.
    ``loaded`` is the data already read (:func:`graphnet.dataset.loaded_data`; a sweep's
    worker gets it from the client); ``draw=False`` leaves ``loss.png`` out;
    ``on_checkpoint(run_dir, epoch)`` is called after every checkpoint but the last (a sweep's
    worker sends the folder's files to the client then)."""
    folders: list[Path] = []
    named = {"out_dir": "out_dir", "weights": "weights", "resume": "resume", **(names or {})}
    late = Stop()  # a signal after the last epoch: noted, and the run still writes every file
    with ExitStack() as lock:  # the run folder's lock, held until loss.png is drawn
        try:
            history = _train(
                spec,
                out_dir,
                weights,
                resume,
                reporter or Reporter(),
                folders,
                lock,
                named,
                late,
                loaded,
                on_checkpoint,
            )
        finally:  # the training arrays are released by now: drawing does not add to the peak
            if folders and draw and not late.signal_number:
                from graphnet.plots import try_draw_run

                try_draw_run(folders[0])
    if late.signal_number:
        name = signal.Signals(late.signal_number).name
        drawn = "" if (history.run_dir / "loss.png").exists() else "; loss.png was not drawn"
        raise Interrupted(
            f"interrupted by {name} after the last epoch: the run is complete (weights.npz and "
            f"results.json are written{drawn})",
            late.signal_number,
            str(history.run_dir),
            complete=True,
        )
    return history


def _train(
    spec: Spec,
    out_dir: str | Path | None,
    weights: str | Path | Mapping[str, Any] | None,
    resume: bool,
    reporter: Reporter,
    folders: list[Path],
    lock: ExitStack,
    names: Mapping[str, str],
    late: Stop,
    loaded: Mapping[str, Mapping[str, Any]] | None,
    on_checkpoint: Callable[[Path, int], None] | None,
) -> History:
    rngs = streams(spec.seed)
    network = build(spec)
    data = prepare(spec, rngs, loaded)
    trainer = Trainer(spec, network, data, rngs)
    if weights is not None:
        if resume:
            raise SpecError(
                f"{names['weights']} and {names['resume']} do not go together: a resumed run "
                "starts from its checkpoint"
            )
        network.load_weights(weights)
    network.normalizer = data.normalizer
    assert spec.name is not None
    named_by = names["out_dir"] if out_dir is not None else "the default run folder"
    folder = RunFolder(out_dir if out_dir is not None else default_folder(spec.name, resume))
    lock.enter_context(folder.open(resume, named_by))
    first_epoch = _resume_point(spec, folder, trainer) if resume else 1
    folders.append(folder.path)
    folder.write_spec(saved(spec))
    history = History(folder.path)
    reporter.start(
        folder.path,
        {
            "epochs": spec.train.epochs,
            "first_epoch": first_epoch,
            "samples": trainer.n_train,
            "validation": len(next(iter(trainer.val_data.values()))) if trainer.val_data else 0,
            "parameters": sum(p.size for p in network.params.values()),
        },
    )
    if getattr(type(reporter), "batch", Reporter.batch) is not Reporter.batch:
        trainer.on_batch = reporter.batch
    lock.enter_context(late)  # under the loop's own handler while it runs, then after it
    stopped = _loop(spec, trainer, folder, first_epoch, reporter, on_checkpoint)
    early = trainer.early
    restore_best = early is not None and early.options.restore_best and early.best_epoch > 0
    if early is not None and restore_best:
        network.load_weights(early.best_arrays())  # what weights.npz holds, and the test scores
    folder.write_weights(network.file_arrays())
    history.test = test_scores(spec, network, data.test)
    folder.write_results(_results(spec, history, early, stopped, history.test))
    return history


def _results(
    spec: Spec,
    records: Sequence[dict[str, Any]],
    early: EarlyStopping | None,
    stopped: str,
    test: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """What ``results.json`` holds: epochs, why the run stopped, the best epoch of the monitored
    column (:meth:`Spec.monitor`) and its value, the last row of ``metrics.csv``, and the test
    split's scores when there is one."""
    monitor = spec.monitor()
    best: tuple[float, int] | None = None
    if early is not None:
        best = (early.best, early.best_epoch) if early.best_epoch else None
    else:
        values = [(r[monitor], r["epoch"]) for r in records if not math.isnan(r[monitor])]
        best = min(values) if values else None  # the first epoch of the lowest value
    out: dict[str, Any] = {"epochs": records[-1]["epoch"] if records else 0, "stopped": stopped}
    if best is not None:
        out["best_epoch"] = best[1]
    out["monitor"] = monitor
    if best is not None:
        out["best"] = best[0]
    out["final"] = records[-1] if records else None
    if test:
        out["test"] = dict(test)
    return out


def _resume_point(spec: Spec, folder: RunFolder, trainer: Trainer) -> int:
    """Restore the folder's checkpoint into ``trainer``; the first epoch still to run."""
    first_epoch = 1
    saved_spec = folder.read_spec()
    if saved_spec is not None:
        changed = differences(saved_spec, saved(spec))
        if changed and not differences(saved_spec, spec.to_dict()):
            changed = []  # a run saved with its blocks expanded, as graphnet once saved them
        if changed:
            raise SpecError(
                "--resume: the spec differs from the run's in "
                + "; ".join(changed)
                + " (only train.epochs may change)",
                str(folder.file(SPEC)),
            )
        checkpoint = folder.read_checkpoint()
        if checkpoint is not None:
            where = str(folder.file(CHECKPOINT))
            early = trainer.early
            load_extra = early.load if early is not None else None
            first_epoch = 1 + restore(
                checkpoint, trainer.network, trainer.state, trainer.train_rng, where, load_extra
            )
        done = first_epoch - 1
        if spec.train.epochs < done:
            raise SpecError(
                f"resume: the run has done {done} epochs, more than train.epochs={spec.train.epochs}; "
                "nothing was changed",
                str(folder.path),
            )
        folder.truncate_metrics(trainer.columns, done)
        if trainer.schedule is not None:  # a schedule reads the epochs before this one
            trainer.history = folder.read_metrics()
    if first_epoch == 1:
        warnings.warn(
            f"{folder.path}: --resume: no checkpoint to continue from; training from epoch 1",
            GraphnetWarning,
            stacklevel=3,
        )
    return first_epoch


def _loop(
    spec: Spec,
    trainer: Trainer,
    folder: RunFolder,
    first_epoch: int,
    reporter: Reporter,
    on_checkpoint: Callable[[Path, int], None] | None = None,
) -> str:
    """The epochs, a checkpoint every ``train.checkpoint_every`` seconds and at the end (with
    ``best.npz`` first when the best epoch changed); on any failure, the folder keeps its last
    complete epoch. Why the run stopped: ``completed`` or ``early_stopping``."""
    network = trainer.network
    early = trainer.early
    epochs = spec.train.epochs
    pending: list[dict[str, Any]] = []
    last_write = time.monotonic()
    saved_epoch = first_epoch - 1  # the epoch whose state checkpoint.npz holds (0: none yet)
    with Stop() as trainer.stop, np.errstate(all="ignore"):  # non-finite values are caught
        try:
            for epoch in range(first_epoch, epochs + 1):
                if early is not None and early.stopped:  # a resumed run that had stopped
                    break
                # the state after the last complete epoch, unless checkpoint.npz holds it already
                if saved_epoch == epoch - 1:
                    trainer.rollback.forget()
                else:
                    trainer.keep_rollback(epoch - 1)
                trainer.stop.check(epoch)
                record = trainer.run_epoch(epoch)
                pending.append(record)
                reporter.epoch(record)
                stopping = early is not None and early.update(record)
                if (
                    epoch == epochs
                    or stopping
                    or time.monotonic() - last_write >= spec.train.checkpoint_every
                ):
                    trainer.check_parameters(epoch)  # a checkpoint never holds NaN or Inf
                    folder.append_metrics(trainer.columns, pending)  # rows first: see RunFolder
                    pending.clear()
                    _save_best(folder, early)
                    now = trainer.snapshot(epoch, copy=False)
                    folder.write_checkpoint(checkpoint_arrays(now, network))
                    saved_epoch, last_write = epoch, time.monotonic()
                    if on_checkpoint is not None and epoch < epochs and not stopping:
                        on_checkpoint(folder.path, epoch)
                elif len(pending) >= PENDING_ROWS:  # memory must not grow with the epochs
                    folder.append_metrics(trainer.columns, pending)
                    pending.clear()
                if stopping:
                    break
            _save_best(folder, early)  # a resumed run that had nothing left to do
        except Exception as error:  # whatever stopped the run, keep its complete epochs
            snapshot = trainer.fallback()
            arrays = checkpoint_arrays(snapshot, network) if snapshot else None
            kept = _keep_last_complete(folder, trainer.columns, pending, arrays, early)
            if isinstance(error, GraphnetError) and (kept or error.exit_code != 2):
                error.add_context(
                    after=f"; the run folder keeps epoch {kept}"
                    if kept
                    else "; no epoch was complete"
                )
            if isinstance(error, Interrupted):
                error.add_context(where=str(folder.path))
            raise
    return "early_stopping" if early is not None and early.stopped else "completed"


def _save_best(folder: RunFolder, early: EarlyStopping | None) -> None:
    """``best.npz``, when the best epoch changed since it was written."""
    if early is not None and early.unsaved and early.best_epoch > 0:
        folder.write_best({**early.best_arrays(), **early.network.normalizer.arrays()})
        early.unsaved = False


def _keep_last_complete(
    folder: RunFolder,
    columns: list[str],
    pending: list[dict[str, Any]],
    snapshot: dict[str, Any] | None,
    early: EarlyStopping | None,
) -> int:
    """After a failure: the checkpoint, weights and best epoch of the last complete epoch; its
    number."""
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
            {
                k[len("param/") :] if k.startswith("param/") else k: v
                for k, v in last.items()
                if k.startswith("param/")
                or (k.startswith("data/") and k.endswith(("/shift", "/scale")))
            }
        )
        if early is not None and any(k.startswith(PREFIX) for k in last):
            early.load(last, str(folder.file(CHECKPOINT)))
            _save_best(folder, early)
        return int(last["epoch"])
    except GraphnetError:  # the folder cannot be written: report the first failure, not this one
        return 0
