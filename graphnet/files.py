"""Writing files atomically: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from graphnet.errors import DataError


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
