"""The run folder: ``spec.yaml``, ``weights.npz``, ``checkpoint.npz``, ``metrics.csv``,
``best.npz`` (with early stopping) and ``results.json``.

Every file is written atomically (a temporary file in the same folder, then ``os.replace``), so
a run that fails or is killed half-way through a write keeps the previous file intact. NPZ files
are read without pickle.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from graphnet.errors import DataError, SpecError, TrainingError
from graphnet.files import write_atomic
from graphnet.npzfile import npz_writer, read_npz
from graphnet.yamlio import read_plain, spec_text

SPEC = "spec.yaml"
WEIGHTS = "weights.npz"
CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.csv"
BEST = "best.npz"
RESULTS = "results.json"
LOCK = ".graphnet.lock"


RUN_FILES = (SPEC, WEIGHTS, CHECKPOINT, METRICS, "loss.png", "results.json", "best.npz")


def refuse_run_file(path: Path, named_by: str) -> None:
    """Refuse to write ``path`` (an output a command was asked for) over a file of a run
    folder: a run's own files, or any file already in a run folder."""
    folder = RunFolder(path.parent)
    if folder.file(SPEC).is_file() and (path.name in RUN_FILES or path.exists()):
        raise DataError(
            f"{named_by}: {path.name} is a file of the run in {path.parent}; write elsewhere",
            str(path),
        )


def default_folder(name: str, resume: bool, root: Path = Path("runs")) -> Path:
    """``runs/<name>``, or when that holds a run already the next free ``runs/<name>-<k>``.

    With ``resume``, the newest of them that holds a run.
    """

    def folder(k: int) -> Path:
        return root / (name if k == 1 else f"{name}-{k}")

    k = 1
    while RunFolder(folder(k)).holds_run():
        k += 1
    return folder(max(k - 1, 1)) if resume else folder(k)


class RunFolder:
    """One run's folder and the files in it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock: Any = None

    def holds_run(self) -> bool:
        """Whether the folder holds anything (but a lock left by an earlier run)."""
        return self.path.is_dir() and any(p.name != LOCK for p in self.path.iterdir())

    def is_run(self) -> bool:
        """Whether the folder holds a run of graphnet's: its spec and a checkpoint."""
        return self.file(SPEC).is_file() and self.file(CHECKPOINT).is_file()

    @contextmanager
    def open(
        self, resume: bool, named_by: str = "--out", resume_by: str = "--resume"
    ) -> Iterator[None]:
        """Create the folder and hold its lock while the block runs; refuse a folder that holds
        anything unless resuming, and, resuming, one that holds something but a run.

        ``named_by`` says where the folder's name came from and ``resume_by`` how to resume,
        for messages (a command-line flag, or an argument of the Python API)."""
        if self.path.exists() and not self.path.is_dir():
            raise SpecError(f"{named_by}: the run folder is a file, not a folder", str(self.path))
        self._check(resume, named_by, resume_by)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise TrainingError(
                f"cannot create the run folder: {error.strerror}", str(self.path)
            ) from None
        with self._locked():
            self._check(
                resume, named_by, resume_by
            )  # again: another run may have written it meanwhile
            yield

    def _check(self, resume: bool, named_by: str, resume_by: str) -> None:
        if not self.holds_run():
            return
        if not resume:
            raise SpecError(
                f"{named_by}: the folder holds another run; choose another folder, or add "
                f"{resume_by} to continue it",
                str(self.path),
            )
        if not self.file(SPEC).is_file():
            raise SpecError(
                f"resume: not a run folder of graphnet's (it has no {SPEC}); nothing was touched",
                str(self.path),
            )

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock on the folder for as long as a run writes to it: a second run on
        the same folder is refused at once, naming the process that holds it."""
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock
            yield
            return
        path = self.file(LOCK)
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held across the block
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise SpecError(
                    f"another graphnet run is writing to this folder (process {holder}); "
                    "wait for it to finish or choose another folder",
                    str(self.path),
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            yield
        finally:
            handle.close()  # closing releases the lock

    def file(self, name: str) -> Path:
        return self.path / name

    def write(
        self, name: str, data: bytes | Callable[[BinaryIO], None], durable: bool = False
    ) -> None:
        try:
            write_atomic(self.file(name), data, durable)
        except OSError as error:
            raise TrainingError(
                f"cannot write {name}: {error.strerror or error}", str(self.path)
            ) from None

    def write_spec(self, spec: Mapping[str, Any]) -> None:
        self.write(SPEC, spec_text(spec).encode())

    def read_spec(self) -> dict[str, Any] | None:
        path = self.file(SPEC)
        return read_plain(path, "the run's spec") if path.exists() else None

    def write_weights(self, params: Mapping[str, np.ndarray]) -> None:
        self.write(WEIGHTS, npz_writer(params))

    def write_best(self, params: Mapping[str, np.ndarray]) -> None:
        self.write(BEST, npz_writer(params))

    def write_results(self, results: Mapping[str, Any]) -> None:
        """``results.json``; a NaN or infinite number is written as ``null`` (JSON has none)."""
        self.write(RESULTS, (json.dumps(_finite(results), indent=2) + "\n").encode())

    def read_results(self) -> dict[str, Any] | None:
        path = self.file(RESULTS)
        if not path.exists():
            return None
        try:
            results: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise DataError(f"cannot be read: {error}", str(path)) from None
        return results

    def write_checkpoint(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.write(CHECKPOINT, npz_writer(arrays), durable=True)

    def read_checkpoint(self) -> dict[str, np.ndarray] | None:
        path = self.file(CHECKPOINT)
        return read_npz(path, "checkpoint") if path.exists() else None

    def append_metrics(self, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
        """Append ``rows`` to ``metrics.csv`` (floats in full precision), header first if new.

        A run appends an epoch's rows before the checkpoint that holds the epoch, so the rows
        of every checkpointed epoch are always there; rows past the checkpoint (a run killed in
        between) are dropped on ``--resume`` and computed again."""
        path = self.file(METRICS)
        text = _csv_rows(columns, rows, header=not path.exists() or path.stat().st_size == 0)
        try:
            with path.open("a", encoding="utf-8") as file:
                file.write(text)
        except OSError as error:
            raise TrainingError(
                f"cannot write {METRICS}: {error.strerror or error}", str(self.path)
            ) from None

    def truncate_metrics(self, columns: Sequence[str], last_epoch: int) -> None:
        """Keep the rows of epochs up to ``last_epoch`` only (before resuming after it), in one
        atomic replace; every one of them must be there."""
        rows = [row for row in self.read_metrics() if row["epoch"] <= last_epoch]
        missing = sorted(set(range(1, last_epoch + 1)) - {row["epoch"] for row in rows})
        if missing:
            raise DataError(
                f"{METRICS} lacks the rows of epochs {missing[0]}..{missing[-1]} that the "
                "checkpoint holds; the folder was changed by hand",
                str(self.file(METRICS)),
            )
        self.write(METRICS, _csv_rows(columns, rows, header=True).encode())

    def has_rows(self) -> bool:
        """Whether ``metrics.csv`` holds a complete row, read no further than that row."""
        try:
            with self.file(METRICS).open("rb") as f:
                f.readline()  # the header
                return f.readline().endswith(b"\n")
        except OSError:
            return False

    def read_metrics(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.csv``; a last row cut short (a full disk) is left out."""
        path = self.file(METRICS)
        if not path.exists():
            return []
        try:
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        except (OSError, UnicodeDecodeError) as error:
            raise DataError(f"cannot be read: {error}", str(path)) from None
        if lines and not lines[-1].endswith("\n"):
            lines.pop()  # an append that did not finish
        rows: list[dict[str, Any]] = []
        for number, row in enumerate(csv.DictReader(lines), start=2):
            try:
                rows.append({k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()})
            except (ValueError, TypeError) as error:
                raise DataError(f"cannot be read: {error}", f"{path}:{number}") from None
        return rows


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by ``None``."""
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _csv_rows(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], header: bool) -> str:
    """The lines of ``rows``, numbers all (floats in full precision, by ``repr``): no value
    needs quoting, so a row is its values joined by commas; the header is quoted as needed."""
    buffer = io.StringIO()
    if header:
        csv.writer(buffer, lineterminator="\n").writerow(columns)
    buffer.writelines(
        ",".join(
            [repr(v) if isinstance(v, float) else str(v) for v in map(row.__getitem__, columns)]
        )
        + "\n"
        for row in rows
    )
    return buffer.getvalue()
