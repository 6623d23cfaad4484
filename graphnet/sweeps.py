"""Sweeps: the trials of a grid (:mod:`graphnet.trials`) trained on dask.distributed, one run
folder per trial and ``sweep.csv``.

The client validates every trial before submitting any, reads the data once per distinct data
set and sends it (workers need graphnet and the spec's plugins, no shared disk); a worker
trains in a temporary folder of its own and returns the folder's files as bytes, which the
client writes. dask is imported only here, inside :func:`sweep`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from graphnet.errors import GraphnetError, GraphnetWarning, Interrupted, SpecError, TrainingError
from graphnet.files import write_atomic
from graphnet.runfolder import RESULTS, RUN_FILES, RunFolder
from graphnet.spec import Spec
from graphnet.trials import (
    FINISHED,
    SWEEP_CSV,
    Trial,
    make_trials,
    parse_grid,
    read_rows,
    row,
    write_rows,
)

BLAS_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
}
INSTALL = "pip install 'graphnet[sweep]'"


RESUMABLE = ("spec.yaml", "metrics.csv", "checkpoint.npz", "best.npz")  # what a resume reads
POLL = 0.5  # seconds between the client's looks for checkpoints the workers sent


def train_trial(
    spec_data: dict[str, Any],
    spec_file: str,
    plugins: Sequence[str],
    plugin_files: Mapping[str, bytes],
    loaded: Mapping[str, Mapping[str, Any]],
    name: str,
    files: Mapping[str, bytes],
    checkpoints: str | None = None,
) -> dict[str, Any]:
    """On a worker: train one trial in a temporary folder (continuing ``files``, a run folder's
    files, when given) and return its status and its run folder's files as bytes.

    ``plugin_files`` are the ``--plugin`` files the client read (name -> source), written to a
    folder of this worker's own. ``checkpoints`` names the sweep's :class:`_Checkpoints`: after
    every checkpoint but the last, the files a resume needs become the trial's newest (the
    client keeps them, so an interrupted sweep resumes from them), and a trial that an earlier
    attempt left there (its worker was lost) continues from them."""
    from graphnet import run
    from graphnet.api import graph_of
    from graphnet.specfile import Source

    started = time.perf_counter()
    status, message = "done", ""
    refs = [_local_plugin(ref, plugin_files) for ref in plugins]
    newest = _Checkpoints.newest(checkpoints, name) if checkpoints is not None else None
    if newest is not None:
        files = newest["files"]

    def send(folder: Path, epoch: int) -> None:
        assert checkpoints is not None
        _Checkpoints.send(checkpoints, name, epoch, _files(folder, RESUMABLE))

    with tempfile.TemporaryDirectory(prefix="graphnet-sweep-") as tmp:
        folder = Path(tmp) / name
        if files:
            folder.mkdir()
            for file, data in files.items():
                (folder / file).write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                spec = graph_of(spec_data, Source(spec_file), refs)
                run.train(
                    spec.spec,
                    folder,
                    resume=bool(files),
                    loaded=loaded,
                    on_checkpoint=send if checkpoints is not None else None,
                )
        except TrainingError as error:
            status = "diverged" if "diverged" in error.message else "failed"
            message = str(error)
        except GraphnetError as error:
            status, message = "failed", str(error)
        except Exception as error:
            status, message = "failed", f"{type(error).__name__}: {error}"
        out = _files(folder, RUN_FILES)
    return {
        "status": status,
        "message": message,
        "files": out,
        "seconds": time.perf_counter() - started,
    }


def _plugin_files(plugins: Sequence[str]) -> dict[str, bytes]:
    """The ``--plugin`` files (not module names) as bytes, for workers that share no disk."""
    from graphnet.registry import is_file_ref

    return {ref: Path(ref).read_bytes() for ref in plugins if is_file_ref(ref)}


def _local_plugin(ref: str, plugin_files: Mapping[str, bytes]) -> str:
    """``ref`` on this worker: a sent plugin file is written once, to a folder named by its
    contents (the same file gives the same path, so the registry of this process is reused)."""
    if ref not in plugin_files:
        return ref
    import hashlib

    source = plugin_files[ref]
    folder = (
        Path(tempfile.gettempdir()) / f"graphnet-plugin-{hashlib.sha256(source).hexdigest()[:16]}"
    )
    path = folder / Path(ref).name
    if not path.is_file():
        folder.mkdir(exist_ok=True)
        write_atomic(path, source)
    return str(path)


def connect(workers: int | None, scheduler: str | None, names: Mapping[str, str]) -> Any:
    """A client of the scheduler at ``scheduler``, else of a local cluster of ``workers``
    processes (default: the CPU count), one thread and one BLAS thread each."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise SpecError(f"sweeps need dask.distributed: {INSTALL}") from None
    if scheduler is not None:
        try:
            return Client(scheduler, timeout=30)
        except OSError as error:
            raise SpecError(f"{names['scheduler']}: cannot connect: {error}") from None
    if workers is not None and workers < 1:
        raise SpecError(f"{names['workers']} must be at least 1")
    count = workers or os.cpu_count() or 1
    try:
        with warnings.catch_warnings():  # another cluster's 8787: a port of its own is fine
            warnings.filterwarnings("ignore", r"Port \d+ is already in use", UserWarning)
            cluster = LocalCluster(
                n_workers=count,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                env=dict(BLAS_ENV),
                silence_logs=40,
            )
    except Exception as error:  # the worker processes did not start
        raise TrainingError(
            f"the local Dask cluster's {count} worker processes did not start "
            f"({type(error).__name__}: {error}); a Python script that calls graphnet.sweep must "
            'call it under `if __name__ == "__main__":`, since every worker process imports '
            "the script that started it"
        ) from None
    return Client(cluster)


def sweep(
    spec_path: str | Path,
    grid: Mapping[str, Sequence[Any]] | Sequence[str],
    seeds: int = 1,
    sample: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    out_dir: str | Path | None = None,
    monitor: str | None = None,
    resume: bool = False,
    *,
    plugins: Sequence[str] = (),
    progress: bool = False,
    names: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Train every trial of ``grid`` (see DESIGN.md, "Sweeps") and return the rows of
    ``sweep.csv``. ``names`` is how messages name the arguments (the command line's flags)."""
    named = {
        k: k for k in ("grid", "seeds", "sample", "workers", "scheduler", "out_dir", "monitor")
    }
    named.update({"resume": "resume", **(names or {})})
    keys = parse_grid(grid, named["grid"])
    trials = make_trials(spec_path, keys, seeds, sample, plugins, named)
    base = trials[0].spec
    column = monitor or ("val_loss" if "val_loss" in base.columns() else "loss")
    if column not in base.columns() or column in ("epoch", "seconds"):
        raise SpecError(
            f"{named['monitor']}: no column {column!r} in metrics.csv "
            f"(it has {', '.join(c for c in base.columns() if c not in ('epoch', 'seconds'))})"
        )
    assert base.name is not None
    out = Path(out_dir) if out_dir is not None else Path("runs") / f"{base.name}-sweep"
    previous = read_rows(out / SWEEP_CSV)
    if previous and not resume:
        raise SpecError(
            f"{named['out_dir']}: the folder holds a sweep; choose another folder, or add "
            f"{named['resume']} to continue it",
            str(out),
        )
    out.mkdir(parents=True, exist_ok=True)
    todo = []
    for trial in trials:
        before = previous.get(trial.name)
        if resume and before is not None and before["status"] in FINISHED:
            status, seconds = before["status"], float(before["seconds"])
            trial.row = row(trial, keys, column, out, status, seconds)
        else:
            todo.append(trial)
    closing: list[threading.Thread] = []  # the cluster closes while the table is written
    try:
        _run(
            trials,
            todo,
            keys,
            column,
            out,
            spec_path,
            (workers, scheduler),
            plugins,
            progress,
            named,
            closing,
        )
    except KeyboardInterrupt:
        kept = sum(t.row.get("status") in FINISHED for t in trials)
        raise Interrupted(
            f"interrupted: the {kept} finished trials are kept; the same sweep with "
            f"{named['resume']} trains the others",
            signal.SIGINT,
            str(out),
        ) from None
    finally:
        rows = [t.row or row(t, keys, column, out, "interrupted", 0.0) for t in trials]
        write_rows(out / SWEEP_CSV, rows, keys)
        from graphnet.plots import try_draw_sweep

        try_draw_sweep(out / "sweep.png", rows, list(keys), column)
        for thread in closing:
            thread.join()
    return rows


def _run(
    trials: list[Trial],
    todo: list[Trial],
    keys: Mapping[str, list[Any]],
    column: str,
    out: Path,
    spec_path: str | Path,
    where: tuple[int | None, str | None],
    plugins: Sequence[str],
    progress: bool,
    names: Mapping[str, str],
    closing: list[threading.Thread],
) -> None:
    """Submit ``todo`` to the cluster (``where``: the local workers or a scheduler's address)
    and collect the trials; the client and its cluster are closed by a thread appended to
    ``closing``."""
    if not todo:
        return
    from graphnet.dataset import loaded_data
    from graphnet.instances import saved
    from graphnet.registry import plugin_refs

    refs = plugin_refs(plugins)
    plugin_files = _plugin_files(refs)
    data: dict[str, Any] = {}  # one copy of each distinct data set
    for trial in todo:
        data.setdefault(_data_key(trial.spec), loaded_data(trial.spec))
    client = connect(*where, names)
    threading.Thread(target=_import_plotting, daemon=True).start()  # for sweep.png, meanwhile
    try:
        checkpoints = _Checkpoints(client)
        scattered = {k: client.scatter([v], broadcast=True)[0] for k, v in data.items()}
        futures = {}
        for trial in todo:
            checkpoints.start(trial.name)
            future = client.submit(
                train_trial,
                saved(trial.spec),
                str(Path(spec_path).resolve()),
                refs,
                plugin_files,
                scattered[_data_key(trial.spec)],
                trial.name,
                _resumable(RunFolder(out / trial.name)),
                checkpoints.name,
                key=f"graphnet-{trial.name}-{os.getpid()}-{time.monotonic_ns()}",
                retries=1,
                pure=False,
            )
            futures[future] = trial
        progress_line = None
        if progress:
            keys_of_ours = {future.key for future in futures}

            def running() -> int:  # trials a worker is training now (the others wait)
                busy = client.processing()
                threads = client.nthreads()  # a worker may hold more tasks than it runs
                return sum(
                    min(sum(key in keys_of_ours for key in keys), threads.get(worker, 1))
                    for worker, keys in busy.items()
                )

            progress_line = _Progress(len(trials), len(trials) - len(todo), running)
        try:
            _collect(futures, checkpoints, keys, column, out, progress_line)
        except KeyboardInterrupt:
            client.cancel(list(futures))  # the trials still running; finished ones are written
            checkpoints.save(futures.values(), out)
            raise
        finally:
            checkpoints.close(todo)
    finally:
        closing.append(threading.Thread(target=_close, args=(client,), daemon=True))
        closing[-1].start()


def _close(client: Any) -> None:
    """Close ``client`` and the local cluster it started, if any (a failure only warned of)."""
    try:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None:
            cluster.close()
    except Exception as error:
        warnings.warn(f"the Dask cluster did not close cleanly: {error}", GraphnetWarning, 2)


def _import_plotting() -> None:
    """Import what ``sweep.png`` is drawn with, while the client waits for its trials (a
    figure made and dropped: its imports are what is wanted)."""
    from graphnet.plots import new_figure

    with contextlib.suppress(Exception):  # drawing says why, later
        new_figure()


class _Progress:
    """The client's progress lines on stderr: trials done, running and failed, and the ETA."""

    def __init__(self, total: int, skipped: int, running: Callable[[], int]) -> None:
        self.total, self.skipped, self.running = total, skipped, running
        self.done = self.failed = 0
        self.started = time.monotonic()

    def report(self) -> None:
        finished = self.done + self.failed
        left = self.total - self.skipped - finished
        running = min(self.running(), left) if left else 0
        eta = ""
        if finished and left:
            seconds = (time.monotonic() - self.started) / finished * left
            eta = f", about {_duration(seconds)} to go"
        sys.stderr.write(
            f"sweep: {self.done + self.skipped} done, {running} running, "
            f"{left - running} waiting, {self.failed} failed (of {self.total}){eta}\n"
        )


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def _collect(
    futures: Mapping[Any, Trial],
    checkpoints: Any,
    keys: Mapping[str, list[Any]],
    column: str,
    out: Path,
    progress: _Progress | None,
) -> None:
    """Write each trial's folder as it finishes, and the checkpoints that unfinished trials
    send in the meantime."""
    from distributed import wait

    if progress is not None:
        progress.report()
    pending = set(futures)
    while pending:
        try:  # back at the first trial that finishes, or after POLL seconds to save checkpoints
            finished, pending = wait(pending, timeout=POLL, return_when="FIRST_COMPLETED")
        except TimeoutError:
            finished = set()
        except Exception:  # some were cancelled by another client: their rows say failed
            finished = {future for future in pending if future.status != "pending"}
            pending -= finished
        checkpoints.save(futures.values(), out)
        for future in finished:
            trial = futures[future]
            try:
                result = future.result()
            except Exception as error:  # a trial lost with its workers, or it could not run
                result = {"status": "failed", "message": str(error), "files": {}, "seconds": 0.0}
            _write_folder(out / trial.name, result["files"])
            checkpoints.forget(trial.name)
            trial.row = row(trial, keys, column, out, result["status"], result["seconds"])
            if progress is not None:
                if result["status"] == "done":
                    progress.done += 1
                else:
                    progress.failed += 1
                    sys.stderr.write(
                        f"sweep: {trial.name} {result['status']}: {result['message']}\n"
                    )
                progress.report()


class _Checkpoints:
    """The checkpoints that workers send while their trials run: each trial's newest is held by
    the scheduler in a ``distributed.Variable`` (a trial retried after its worker was lost
    continues from it), and a note on a ``distributed.Queue`` tells the client to write it into
    the trial's folder. The scheduler holds one checkpoint per running trial at the most."""

    def __init__(self, client: Any) -> None:
        from distributed import Queue

        self.client = client
        self.name = f"graphnet-sweep-{os.getpid()}-{time.monotonic_ns()}"
        self.queue = Queue(self.name, client=client)

    @staticmethod
    def send(name: str, trial: str, epoch: int, files: Mapping[str, bytes]) -> None:
        """On a worker: ``files`` are ``trial``'s newest checkpoint, of ``epoch``."""
        from distributed import Queue

        _Checkpoints.slot(name, trial).set({"epoch": epoch, "files": dict(files)})
        queue = Queue(name)
        queue.put({"trial": trial, "epoch": epoch})
        queue.close()

    @staticmethod
    def newest(name: str, trial: str) -> dict[str, Any] | None:
        """On a worker: the newest checkpoint an earlier attempt at ``trial`` sent, if any."""
        value: dict[str, Any] = _Checkpoints.slot(name, trial).get()
        return value if value["epoch"] > 0 else None

    @staticmethod
    def slot(name: str, trial: str, client: Any = None) -> Any:
        """The ``distributed.Variable`` that holds ``trial``'s newest checkpoint."""
        from distributed import Variable

        return Variable(f"{name}-{trial}", client=client)

    def start(self, trial: str) -> None:
        """Before ``trial`` is submitted: no checkpoint yet (so that asking never waits)."""
        self.slot(self.name, trial, self.client).set({"epoch": 0, "files": {}})

    def save(self, trials: Iterable[Trial], out: Path) -> None:
        """Write the newest checkpoint of every trial still running that sent one since the
        last look into its folder (never an older epoch than the folder holds: a retried trial
        that started over sends its epochs again)."""
        running = {t.name: t for t in trials if not t.row}
        noted = {message["trial"] for message in self.queue.get(batch=True)}
        for trial in (running[n] for n in sorted(noted) if n in running):
            value = self.slot(self.name, trial.name, self.client).get()
            if value["epoch"] > trial.saved_epoch:
                _write_folder(out / trial.name, value["files"])
                trial.saved_epoch = value["epoch"]

    def forget(self, trial: str) -> None:
        """``trial`` has finished: the scheduler lets go of its checkpoint."""
        self.slot(self.name, trial, self.client).delete()

    def close(self, trials: Iterable[Trial]) -> None:
        """The sweep is over: let go of the checkpoints of the trials that did not finish (the
        finished ones were let go as they finished) and of the queue."""
        for trial in trials:
            if not trial.row:
                self.forget(trial.name)
        self.queue.close()


def _data_key(spec: Spec) -> str:
    """Trials whose data is the same share one copy: same data section, same seed."""
    return repr((spec.to_dict().get("data"), spec.seed, str(spec.base_dir)))


def _resumable(folder: RunFolder) -> dict[str, bytes]:
    """The files of a trial's folder that a worker continues from (none without a checkpoint)."""
    if not folder.is_run() or folder.file(RESULTS).is_file():
        return {}
    return _files(folder.path, RESUMABLE)


def _files(folder: Path, names: Iterable[str]) -> dict[str, bytes]:
    """The files of ``folder`` among ``names`` that exist, as bytes."""
    return {name: (folder / name).read_bytes() for name in names if (folder / name).is_file()}


def _write_folder(path: Path, files: Mapping[str, bytes]) -> None:
    if not files:
        return
    path.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        write_atomic(path / name, data)
