"""NPZ files: read without pickle, written with stable bytes.

Every NPZ graphnet reads (weights, checkpoints, data, inputs to predict) goes through
:func:`read_npz`; every one it writes through :func:`npz_writer`.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

from graphnet.errors import DataError


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
