"""NPZ files: read without pickle, written with stable bytes.

Every NPZ graphnet reads (weights, checkpoints, data, inputs to predict) goes through
:func:`read_npz`; every one it writes through :func:`npz_writer`.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
import zlib
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from graphnet.errors import DataError, suggest

Expect = Callable[[str, tuple[int, ...], np.dtype[Any]], None]


def available_memory() -> int:
    """Bytes this machine can still give (MemAvailable); a generous guess where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 34


def members(
    archive: zipfile.ZipFile, path: str | Path
) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
    """Every array's key, shape and dtype, read from the ``.npy`` headers alone: nothing is
    decompressed beyond a header, so a compressed bomb is seen before it goes off."""
    out: dict[str, tuple[tuple[int, ...], np.dtype[Any]]] = {}
    for info in archive.infolist():
        key = info.filename[: -len(".npy")] if info.filename.endswith(".npy") else info.filename
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(member)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        if dtype.hasobject:  # object arrays need pickle, which could run code
            raise DataError(
                f"cannot be read without pickle (array {key!r} holds Python objects); save "
                "plain numeric arrays",
                str(path),
            )
        out[key] = (tuple(int(d) for d in shape), dtype)
    return out


def read_npz(
    path: str | Path, what: str, expect: Expect | None = None, max_bytes: int | None = None
) -> dict[str, np.ndarray]:
    """Every array of an NPZ file, loaded without pickle; errors name the file.

    Each member's header is read first: ``expect(key, shape, dtype)`` may refuse one (raising a
    ``DataError``), and arrays whose sizes add up to more than ``max_bytes`` (default: the
    memory this machine has available) are refused, all before anything is decompressed.
    """
    limit = available_memory() if max_bytes is None else max_bytes
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
        with zipfile.ZipFile(path) as archive:
            found = members(archive, path)
        total = 0
        for key, (shape, dtype) in found.items():
            if expect is not None:
                expect(key, shape, dtype)
            total += math.prod(shape) * dtype.itemsize
        if total > limit:
            raise DataError(
                f"its arrays would take {total / 2**30:.1f} GiB, more than the "
                f"{limit / 2**30:.1f} GiB this machine has available; refused before reading",
                str(path),
            )
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise DataError(f"{what} not found", str(path)) from None
    except IsADirectoryError:
        raise DataError(f"is a folder, not a {what}", str(path)) from None
    except PermissionError as error:
        raise DataError(f"cannot be read: {error.strerror}", str(path)) from None
    except ValueError as error:
        if "pickle" not in str(error):
            raise DataError(f"not a readable NPZ file ({error})", str(path)) from None
        raise DataError(  # object arrays need pickle, which could run code
            f"cannot be read without pickle ({error}); save plain numeric arrays", str(path)
        ) from None
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise DataError(f"not a readable NPZ file ({error})", str(path)) from None


def expect_arrays(
    arrays: Mapping[str, tuple[tuple[int, ...], np.dtype[Any]]], what: str, where: str
) -> Expect:
    """An ``expect`` for :func:`read_npz` allowing just these keys, each of its shape and of a
    real number dtype (weights, checkpoints)."""

    def expect(key: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        if key not in arrays:
            raise DataError(
                f"unexpected {key}{suggest(key, arrays)} (the network's arrays are "
                f"{', '.join(list(arrays)[:8])}{', ...' if len(arrays) > 8 else ''})",
                where,
            )
        if shape != arrays[key][0]:
            raise DataError(
                f"{key}: shape {list(shape)}, the network needs {list(arrays[key][0])}", where
            )
        if dtype.kind not in "iuf":
            raise DataError(f"{key}: {dtype} array, expected real numbers", where)

    return expect


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
