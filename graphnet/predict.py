"""``graphnet predict``: a trained network's outputs for the inputs held in a CSV or NPZ file.

Only the inputs that the outputs depend on are read (targets are not needed). A CSV file gives
each input the columns of the spec's ``csv`` data source when it has one, or else the columns
``<input>_0``, ``<input>_1``, … (``<input>`` alone for a one-element input), flattened in C
order; an NPZ file gives each input the array of its name (or of the spec's ``npz`` source's
``arrays`` mapping). Predictions are written as CSV (header ``<output>_<i>``, one row per input
row, floats in full precision) or as NPZ keyed by output name.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from graphnet.base import Array, Shape
from graphnet.csvfile import Table, read_table
from graphnet.errors import DataError, suggest
from graphnet.files import write_output
from graphnet.graph import ancestors
from graphnet.network import Network
from graphnet.npzfile import npz_bytes, read_npz

FORMATS = {".csv": "csv", ".npz": "npz"}


def needed_inputs(network: Network) -> list[str]:
    """The graph inputs that the network's outputs depend on, in the spec's order."""
    needed = ancestors(network.graph, network.graph.outputs)
    return [name for name in network.graph.inputs if name in needed]


def column_names(name: str, shape: Shape) -> list[str]:
    """``<name>_0``, ``<name>_1``, … for every element of a per-sample ``shape``."""
    return [f"{name}_{i}" for i in range(math.prod(shape))]


def output_format(path: Path | None) -> str:
    """``csv`` or ``npz`` by the output file's extension (CSV for standard output)."""
    if path is None or str(path) == "-":
        return "csv"
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"--output: cannot tell the format from {path.suffix or 'no extension'!r}; "
            "name a .csv or .npz file",
            str(path),
        )
    return fmt


def _source_option(network: Network, source: str, option: str) -> Any:
    """An option of the spec's data source if it is ``source``, else None."""
    data = network.graph.spec.data
    if data is None or data.source != source:
        return None
    return getattr(data.options_model, option, None)


# -- reading -------------------------------------------------------------------------------------


def read_inputs(network: Network, path: Path) -> dict[str, Array]:
    """The inputs the outputs need, from a CSV or NPZ file, checked against the spec's shapes."""
    if path.suffix.lower() == ".npz":
        return _read_npz(network, path)
    return _read_csv(network, path)


def _csv_columns(network: Network, table: Table, name: str) -> tuple[list[str], str, bool]:
    """The columns holding input ``name``, how to describe them in a message, and whether they
    are named ``<input>_<i>``."""
    shape = network.graph.inputs[name]
    size = math.prod(shape)
    mapping = _source_option(network, "csv", "columns")
    if mapping is not None and name in mapping:
        columns = list(mapping[name])
        where = network.graph.spec.where(("data", "columns", name))
        if len(columns) != size:
            raise DataError(
                f"input {name!r} has shape {list(shape)} ({size} values), but the spec's csv "
                f"source maps it to {len(columns)} column(s): {', '.join(columns)}",
                where,
            )
        return columns, f"input {name!r} (data.columns.{name} of the run's spec)", False
    columns = column_names(name, shape)
    described = f"input {name!r} of shape {list(shape)} (columns {', '.join(columns)})"
    if size == 1 and table.has(name):
        if table.has(columns[0]):
            raise DataError(
                f"both {name!r} and {columns[0]!r} could be {described}; keep one",
                f"{table.path}:1",
            )
        return [name], f"input {name!r}", False
    return columns, described, True


def _check_width(table: Table, name: str, columns: list[str], described: str) -> None:
    """Refuse ``<name>_<k>`` columns beyond the input's size: the file is for another shape."""
    prefix = f"{name}_"
    extra = [
        c
        for c in table.header
        if c.startswith(prefix) and c[len(prefix) :].isdigit() and c not in columns
    ]
    if extra:
        raise DataError(
            f"{described} takes {len(columns)} column(s), but the header also has "
            f"{', '.join(extra)}",
            f"{table.path}:1",
        )


def _read_csv(network: Network, path: Path) -> dict[str, Array]:
    delimiter = _source_option(network, "csv", "delimiter") or ","
    table = read_table(path, delimiter)
    out: dict[str, Array] = {}
    for name in needed_inputs(network):
        columns, described, by_convention = _csv_columns(network, table, name)
        values = table.columns(columns, described)
        if by_convention:
            _check_width(table, name, columns, described)
        bad = np.argwhere(~np.isfinite(values))
        if bad.size:
            row, column = (int(i) for i in bad[0])
            raise DataError(
                f"column {columns[column]!r}: {table.rows[row][table.header.index(columns[column])]!r}"
                " is not a finite number",
                f"{path}:{table.lines[row]}",
            )
        out[name] = values.reshape(len(values), *network.graph.inputs[name])
    return out


def _read_npz(network: Network, path: Path) -> dict[str, Array]:
    arrays = read_npz(path, "input file")
    mapping = _source_option(network, "npz", "arrays") or {}
    out: dict[str, Array] = {}
    first: tuple[str, int] | None = None
    for name in needed_inputs(network):
        key = mapping.get(name, name)
        if key not in arrays:
            raise DataError(
                f"no array {key!r} for input {name!r}{suggest(key, arrays)}; "
                f"the file holds: {', '.join(arrays) or 'nothing'}",
                str(path),
            )
        array = arrays[key]
        shape = network.graph.inputs[name]
        if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
            raise DataError(f"array {key!r}: {array.dtype}, not real numbers", str(path))
        if array.shape[1:] != shape:
            raise DataError(
                f"array {key!r} has shape {list(array.shape)}; input {name!r} needs "
                f"[samples, {', '.join(map(str, shape))}]",
                str(path),
            )
        bad = np.argwhere(~np.isfinite(array))
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


# -- writing -------------------------------------------------------------------------------------


def format_csv(outputs: Mapping[str, Array]) -> str:
    """Predictions as CSV: header ``<output>_<i>``, one row per sample, floats as ``repr``."""
    flat = [array.reshape(len(array), math.prod(array.shape[1:])) for array in outputs.values()]
    header = [
        column
        for name, array in zip(outputs, flat, strict=True)
        for column in column_names(name, (array.shape[1],))
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    table = np.concatenate(flat, axis=1) if flat else np.empty((0, 0))
    writer.writerows([repr(float(v)) for v in row] for row in table.tolist())
    return buffer.getvalue()


def write_predictions(outputs: Mapping[str, Array], path: Path) -> None:
    """Write ``outputs`` to ``path`` as CSV or NPZ, by its extension."""
    fmt = output_format(path)
    data = npz_bytes(outputs) if fmt == "npz" else format_csv(outputs).encode()
    write_output(path, data, "predictions")


def prepare(
    run_dir: str | Path, input_path: str | Path, output_path: str | Path | None = None
) -> tuple[Path, Path | None]:
    """Check the paths of a prediction before any work; the input file and the output file
    (None for standard output)."""
    output = Path(output_path) if output_path is not None and str(output_path) != "-" else None
    output_format(output)  # a bad extension fails before any work
    source = Path(input_path)
    if output is not None and output.resolve() == source.resolve():
        raise DataError("--output is the input file; write the predictions elsewhere", str(output))
    if not Path(run_dir).is_dir():
        raise DataError("run folder not found", str(run_dir))
    if not source.is_file():
        raise DataError("input file not found", str(source))
    return source, output


def predict_file(
    network: Network, source: Path, output: Path | None
) -> tuple[dict[str, Array], str | None]:
    """Predict with ``network`` on the file ``source``; write to ``output``.

    Returns the predictions and, without ``output``, their CSV text.
    """
    outputs = network.predict(read_inputs(network, source))
    if output is None:
        return outputs, format_csv(outputs)
    write_predictions(outputs, output)
    return outputs, None
