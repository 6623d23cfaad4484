"""The run folder: ``spec.yaml``, ``weights.npz``, ``checkpoint.npz`` and ``metrics.csv``.

Every file is written atomically (a temporary file in the same folder, then ``os.replace``), so
a run that fails or is killed half-way through a write keeps the previous file intact. NPZ files
are read without pickle.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import yaml

from graphnet.errors import DataError, SpecError, TrainingError

SPEC = "spec.yaml"
WEIGHTS = "weights.npz"
CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.csv"


class _SpecDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Safe YAML with short lists of plain values on one line: ``inputs: [x]``."""


def _represent_list(dumper: Any, data: list[Any]) -> yaml.Node:
    flat = all(isinstance(item, str | int | float | bool) or item is None for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_SpecDumper.add_representer(list, _represent_list)


def spec_text(spec: Mapping[str, Any]) -> str:
    """A resolved spec as YAML, the way ``spec.yaml`` holds it."""
    return yaml.dump(dict(spec), Dumper=_SpecDumper, sort_keys=False, allow_unicode=True)


def read_npz(path: str | Path, what: str) -> dict[str, np.ndarray]:
    """Every array of an NPZ file, loaded without pickle; errors name the file."""
    try:
        with open(path, "rb") as file:
            magic = file.read(6)
        if magic == b"\x93NUMPY":
            raise DataError(
                f"a single .npy array, not an NPZ archive; {what}s are .npz files", str(path)
            )
        if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            raise DataError(
                f"not a readable NPZ file: it is not a ZIP archive (np.savez writes them); {what}s are .npz files",
                str(path),
            )
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise DataError(f"{what} not found", str(path)) from None
    except IsADirectoryError:
        raise DataError(f"is a folder, not a {what}", str(path)) from None
    except ValueError as error:
        if "pickle" not in str(error):
            raise DataError(f"not a readable NPZ file ({error})", str(path)) from None
        raise DataError(  # object arrays need pickle, which could run code
            f"cannot be read without pickle ({error}); save plain numeric arrays", str(path)
        ) from None
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise DataError(f"not a readable NPZ file ({error})", str(path)) from None


def write_atomic(
    path: Path, data: bytes | Callable[[BinaryIO], None], durable: bool = False
) -> None:
    """Write ``data`` (bytes, or a function writing to a file) to ``path`` through a temporary
    file and ``os.replace``, so a reader sees the old file or the new one, never half of one.

    ``durable`` also flushes the file to the disk before the rename (``fsync``), so it survives
    a power cut too; the checkpoint is written so.
    """
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, 0o644)  # mkstemp makes files only their owner can read
        with os.fdopen(handle, "wb") as file:
            if callable(data):
                data(file)
            else:
                file.write(data)
            file.flush()
            if durable:
                os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_output(path: Path, data: bytes, what: str) -> None:
    """Write a file the user asked for (a drawing, predictions), atomically; a failure is a
    :class:`DataError` naming the file."""
    try:
        write_atomic(path, data)
    except OSError as error:
        raise DataError(f"cannot write the {what}: {error.strerror or error}", str(path)) from None


def npz_writer(arrays: Mapping[str, np.ndarray]) -> Callable[[BinaryIO], None]:
    """Writes ``arrays`` as an NPZ file straight to a file (no copy of them in memory), as
    ``np.savez`` does but with a fixed timestamp on each member (``np.savez`` stamps the current
    time), so that equal arrays give equal bytes."""

    def write(file: BinaryIO) -> None:
        with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED) as archive:
            for key, value in arrays.items():
                member = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                member.external_attr = 0o600 << 16
                with archive.open(member, "w", force_zip64=True) as out:
                    np.lib.format.write_array(out, np.asanyarray(value), allow_pickle=False)

    return write


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The NPZ file of ``arrays`` (as :func:`npz_writer` writes it)."""
    buffer = io.BytesIO()
    npz_writer(arrays)(buffer)
    return buffer.getvalue()


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
        if not path.exists():
            return None
        try:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10x faster
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        except (yaml.YAMLError, OSError, UnicodeDecodeError) as error:
            raise SpecError(f"the run's spec cannot be read: {error}", str(path)) from None
        if not isinstance(data, dict):
            raise SpecError("the run's spec is not a mapping", str(path))
        return data

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
