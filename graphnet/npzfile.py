"""NPZ files: read without pickle, written with stable bytes.

Every NPZ graphnet reads (weights, checkpoints, data, inputs to predict) goes through
:func:`read_npz`; every one it writes through :func:`npz_writer`.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

from graphnet.errors import DataError, suggest


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


def read_npz_inputs(
    path: str | Path,
    shapes: Mapping[str, tuple[int, ...]],
    keys: Mapping[str, str] | None = None,
    text: Collection[str] = (),
) -> dict[str, np.ndarray]:
    """Arrays of per-sample ``shapes`` from an NPZ file, keyed by input name: each input's array
    is the one keyed ``keys[input]`` (default: the input's name). They must be real, finite
    numbers with one number of samples (inputs in ``text`` may be strings: class names); an
    array of shape ``(n,)`` fits an input of shape ``[1]``. Errors name the file and array."""
    arrays = read_npz(path, "input file")
    out: dict[str, np.ndarray] = {}
    first: tuple[str, int] | None = None
    for name, shape in shapes.items():
        key = (keys or {}).get(name, name)
        if key not in arrays:
            raise DataError(
                f"no array {key!r} for input {name!r}{suggest(key, arrays)}; "
                f"the file holds: {', '.join(arrays) or 'nothing'}",
                str(path),
            )
        array = arrays[key]
        if array.ndim == 1 and tuple(shape) == (1,):
            array = array.reshape(len(array), 1)
        if name in text and array.dtype.kind == "U":
            pass
        elif not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
            raise DataError(f"array {key!r}: {array.dtype}, not real numbers", str(path))
        if array.shape[1:] != tuple(shape):
            raise DataError(
                f"array {key!r} has shape {list(array.shape)}; input {name!r} needs "
                f"[samples, {', '.join(map(str, shape))}]",
                str(path),
            )
        bad = np.argwhere(~np.isfinite(array)) if array.dtype.kind != "U" else np.empty((0, 1))
        if bad.size:
            raise DataError(
                f"array {key!r}: sample {int(bad[0][0])} holds {array[tuple(bad[0])].item()!r}; "
                "inputs must be finite numbers",
                str(path),
            )
        if first is not None and len(array) != first[1]:
            raise DataError(
                f"array {key!r} has {len(array)} samples, array {first[0]!r} has {first[1]}",
                str(path),
            )
        first = first or (key, len(array))
        out[name] = array
    return out


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
