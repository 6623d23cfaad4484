"""``graphnet predict``: a trained network's outputs for the inputs held in a CSV or NPZ file.

Only the inputs that the outputs depend on are read (targets are not needed). The spec's data
source reads the file first, in its own layout, if it can (``DataSource.read_inputs``: the
``csv`` source's column mapping, the ``npz`` source's array keys); otherwise a CSV file gives
each input the columns ``<input>_0``, ``<input>_1``, … (``<input>`` alone for a one-element
input), flattened in C order, and an NPZ file the array of its name. Predictions are written as CSV (header ``<output>_<i>``, one row per input
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

from graphnet.base import Array, DataSource, Shape
from graphnet.csvfile import column_names, read_csv_inputs
from graphnet.dataset import data_source
from graphnet.errors import DataError
from graphnet.files import write_output
from graphnet.graph import ancestors
from graphnet.network import Network
from graphnet.npzfile import npz_bytes, read_npz_inputs
from graphnet.runfolder import refuse_run_file

FORMATS = {".csv": "csv", ".npz": "npz"}


def needed_inputs(network: Network) -> list[str]:
    """The graph inputs that the network's outputs depend on, in the spec's order."""
    needed = ancestors(network.graph, network.graph.outputs)
    return [name for name in network.graph.inputs if name in needed]


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


# -- reading -------------------------------------------------------------------------------------


def read_inputs(network: Network, path: Path) -> dict[str, Array]:
    """The inputs the outputs need from a CSV or NPZ file: read by the spec's data source when
    it reads the file (``DataSource.read_inputs``), else by input name."""
    shapes = {name: network.graph.inputs[name] for name in needed_inputs(network)}
    return read_file(network, path, shapes)[0]


def read_file(
    network: Network, path: Path, shapes: dict[str, Shape]
) -> tuple[dict[str, Array], DataSource | None]:
    """The inputs named in ``shapes`` from ``path``, and the data source that read them (None
    when read by input name). Inputs with ``classes`` may come back as class names."""
    spec = network.graph.spec
    if spec.data is not None:
        source, caller = data_source(spec)
        arrays = caller.call("read_inputs", source.read_inputs, path, dict(shapes))
        if arrays is not None:
            if not isinstance(arrays, Mapping):
                raise caller.wrong(
                    "read_inputs", f"returned {type(arrays).__name__}, not a dict of arrays"
                )
            missing = [name for name in shapes if name not in arrays]
            if missing:
                raise caller.wrong(
                    "read_inputs", f"returned no array for input {', '.join(missing)}"
                )
            return {name: arrays[name] for name in shapes}, source
    text = [name for name in shapes if spec.inputs[name].classes is not None]
    if path.suffix.lower() == ".npz":
        return read_npz_inputs(path, shapes, text=text), None
    return read_csv_inputs(path, shapes, text=text), None


def with_classes(network: Network, outputs: Mapping[str, Array], proba: bool) -> dict[str, Array]:
    """``outputs`` and, for the prediction of each classification loss, ``<output>_class``
    (the class id, or name when the target has ``classes``) and with ``proba`` the
    probabilities ``<output>_p<k>`` (softmax over the last axis, or sigmoid)."""
    spec = network.graph.spec
    out = dict(outputs)
    for loss in network.graph.losses:
        applies = getattr(loss.section.plugin, "applies", None)
        name = loss.inputs[0]
        if not applies or name not in outputs or f"{name}_class" in out:
            continue
        z = np.asarray(outputs[name], dtype=np.float64).reshape(len(outputs[name]), -1)
        if applies == "softmax":
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            ids = p.argmax(axis=1)
        else:
            p = 0.5 * (1 + np.tanh(0.5 * z))
            ids = (p[:, 0] > 0.5).astype(np.int64)
        classes = spec.inputs[loss.inputs[-1]].classes if loss.inputs[-1] in spec.inputs else None
        out[f"{name}_class"] = np.array(classes)[ids] if isinstance(classes, list) else ids
        if proba:
            for k in range(p.shape[1]):
                out[f"{name}_p{k}"] = p[:, k]
    return out


# -- writing -------------------------------------------------------------------------------------


def format_csv(outputs: Mapping[str, Array]) -> str:
    """Predictions as CSV: header ``<output>_<i>`` (a one-axis array is one column named by
    its key), one row per sample, floats as ``repr``, class names and ids as they are."""
    header: list[str] = []
    cells: list[list[str]] = []
    for name, array in outputs.items():
        if array.ndim == 1:
            header.append(name)
            cells.append([_cell(v) for v in array.tolist()])
            continue
        flat = array.reshape(len(array), math.prod(array.shape[1:]))
        header += column_names(name, (flat.shape[1],))
        cells += [[_cell(v) for v in column] for column in flat.T.tolist()]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(zip(*cells, strict=True))
    return buffer.getvalue()


def _cell(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


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
    if not source.exists():
        raise DataError("input file not found", str(source))
    if not source.is_file():
        raise DataError("not a regular file: give a CSV or NPZ file of inputs", str(source))
    if output is not None:
        refuse_run_file(output, "--output")
    return source, output


def predict_file(
    network: Network, source: Path, output: Path | None, proba: bool = False
) -> tuple[dict[str, Array], str | None]:
    """Predict with ``network`` on the file ``source``; write to ``output``.

    Returns the predictions and, without ``output``, their CSV text.
    """
    outputs = with_classes(network, network.predict(read_inputs(network, source)), proba)
    if output is None:
        return outputs, format_csv(outputs)
    write_predictions(outputs, output)
    return outputs, None
