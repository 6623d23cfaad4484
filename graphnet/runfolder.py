"""The run folder: ``spec.yaml``, ``weights.npz``, ``checkpoint.npz`` and ``metrics.csv``.

Every file is written atomically (a temporary file in the same folder, then ``os.replace``), so
a run that fails or is killed half-way through a write keeps the previous file intact. NPZ files
are read without pickle.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
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

    def holds_run(self) -> bool:
        return self.path.is_dir() and any(self.path.iterdir())

    def prepare(self, resume: bool) -> None:
        """Create the folder; refuse one that holds another run unless resuming."""
        if self.path.exists() and not self.path.is_dir():
            raise SpecError("--out names a file, not a folder", str(self.path))
        if self.holds_run() and not resume:
            raise SpecError(
                "--out: the folder holds another run; choose another --out, or add --resume to continue it",
                str(self.path),
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise TrainingError(
                f"cannot create the run folder: {error.strerror}", str(self.path)
            ) from None

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

    def write_checkpoint(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.write(CHECKPOINT, npz_writer(arrays), durable=True)

    def read_checkpoint(self) -> dict[str, np.ndarray] | None:
        path = self.file(CHECKPOINT)
        return read_npz(path, "checkpoint") if path.exists() else None

    def append_metrics(self, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
        """Append ``rows`` to ``metrics.csv`` (floats in full precision), header first if new."""
        path = self.file(METRICS)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if not path.exists() or path.stat().st_size == 0:
            writer.writerow(columns)
        for row in rows:
            writer.writerow(
                [repr(row[c]) if isinstance(row[c], float) else row[c] for c in columns]
            )
        try:
            with path.open("a", encoding="utf-8") as file:
                file.write(buffer.getvalue())
        except OSError as error:
            raise TrainingError(
                f"cannot write {METRICS}: {error.strerror or error}", str(self.path)
            ) from None

    def truncate_metrics(self, columns: Sequence[str], last_epoch: int) -> None:
        """Keep the rows of epochs up to ``last_epoch`` only (before resuming after it)."""
        rows = [row for row in self.read_metrics() if row["epoch"] <= last_epoch]
        self.file(METRICS).unlink(missing_ok=True)
        self.append_metrics(columns, rows)

    def read_metrics(self) -> list[dict[str, Any]]:
        path = self.file(METRICS)
        if not path.exists():
            return []
        try:
            with path.open(newline="", encoding="utf-8") as file:
                return [
                    {k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()}
                    for row in csv.DictReader(file)
                ]
        except (OSError, ValueError, TypeError) as error:
            raise DataError(f"cannot be read: {error}", str(path)) from None
