"""Built-in data sources: ``synthetic``, ``csv`` and ``npz``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import graphnet
from graphnet.base import Array, Shape
from graphnet.csvfile import Table, read_csv_inputs, read_table
from graphnet.errors import suggest
from graphnet.npzfile import read_npz, read_npz_inputs


class Synthetic(graphnet.DataSource):
    """Generated data sets, drawn from the spec's seed; each yields inputs `x` and `y`.

    - product: x ~ U[0,1)², y = 10·x0·x1 + U(-noise, noise); the notebook's data (regression).
    - xor: x ~ U(-1,1)², y = 1 if x0·x1 > 0 else 0, then x += U(-noise, noise) (two classes).
    - spirals: `classes` interleaved spiral arms; for arm k and r ~ U[0,1),
      angle = 4r + 2πk/classes + noise·N(0,1), x = r·(sin angle, cos angle), y = k (class id).
    - blobs: `classes` Gaussian clusters around centres 2·(cos 2πk/classes, sin 2πk/classes)
      with standard deviation 2·noise + 0.2, y = k (class id).
    """

    type = "synthetic"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        function: Literal["product", "xor", "spirals", "blobs"] = Field(
            description="Which data set: product, xor, spirals or blobs."
        )
        samples: int = Field(1000, ge=1, description="Number of samples.")
        noise: float = Field(
            0.15, ge=0, description="How noisy the data is (see each function's formula)."
        )
        classes: int = Field(3, ge=2, description="Number of classes of spirals and blobs.")

    def load(self, base_dir: Path, rng: np.random.Generator) -> dict[str, Array]:
        o = self.options
        n, noise = o.samples, o.noise
        if o.function == "product":
            x = rng.random((n, 2))
            y = 10 * x[:, 0] * x[:, 1] + noise * (2 * rng.random(n) - 1)
        elif o.function == "xor":
            x = rng.uniform(-1, 1, (n, 2))
            y = (x[:, 0] * x[:, 1] > 0).astype(float)
            x += rng.uniform(-noise, noise, (n, 2))
        elif o.function == "spirals":
            k = rng.integers(0, o.classes, n)
            r = rng.random(n)
            angle = 4 * r + 2 * np.pi * k / o.classes + noise * rng.standard_normal(n)
            x = np.stack([r * np.sin(angle), r * np.cos(angle)], axis=1)
            y = k.astype(float)
        else:
            k = rng.integers(0, o.classes, n)
            centres = 2 * np.stack(
                [np.cos(2 * np.pi * k / o.classes), np.sin(2 * np.pi * k / o.classes)], axis=1
            )
            x = centres + (2 * noise + 0.2) * rng.standard_normal((n, 2))
            y = k.astype(float)
        return {"x": x, "y": y.reshape(n, 1)}


def _resolve(base_dir: Path, path: str) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else base_dir / candidate


class CSV(graphnet.DataSource):
    """A CSV file whose header row names the columns; each input takes a list of columns."""

    type = "csv"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        path: str = Field(description="The CSV file, relative to the spec file.")
        columns: dict[str, list[str]] = Field(
            description="For each graph input, the columns that make up its features, in order."
        )
        delimiter: str = Field(",", min_length=1, max_length=1, description="The field separator.")
        missing: Literal["error", "zero", "mean"] = Field(
            "error",
            description="An empty cell: an error, zero, or the mean of its column in the file.",
        )

    _table: Table | None = None

    def load(self, base_dir: Path, rng: np.random.Generator) -> dict[str, Array]:
        path = _resolve(base_dir, self.options.path)
        self._table = table = read_table(path, self.options.delimiter)
        return {
            name: table.columns(
                wanted, f"columns.{name}", self.options.missing, name in self.text_inputs
            )
            for name, wanted in self.options.columns.items()
        }

    def locate(self, sample: int) -> str | None:
        """``file:line`` of row ``sample`` of the file last read."""
        table = self._table
        if table is None or not 0 <= sample < len(table.lines):
            return None
        return f"{table.path}:{table.lines[sample]}"

    def read_inputs(self, path: Path, shapes: Mapping[str, Shape]) -> dict[str, Array] | None:
        """A CSV file for ``predict``: each input from its columns of ``columns`` (others from
        ``<input>_<i>``), split by ``delimiter``; an NPZ file is not read here."""
        if path.suffix.lower() == ".npz":
            return None
        mapped: dict[str, tuple[list[str], str]] = {}
        for name, shape in shapes.items():
            columns = self.options.columns.get(name)
            if columns is None:
                continue
            if len(columns) != math.prod(shape):
                raise graphnet.DataError(
                    f"input {name!r} has shape {list(shape)} ({math.prod(shape)} values), but "
                    f"the spec's csv source maps it to {len(columns)} column(s): "
                    f"{', '.join(columns)}"
                )
            mapped[name] = (columns, f"input {name!r} (data.columns.{name} of the run's spec)")
        self._table = table = read_table(path, self.options.delimiter)
        return read_csv_inputs(
            table, shapes, self.options.delimiter, mapped, self.options.missing, self.text_inputs
        )


class NPZ(graphnet.DataSource):
    """Arrays from a NumPy .npz file, loaded without pickle."""

    type = "npz"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        path: str = Field(description="The .npz file, relative to the spec file.")
        arrays: dict[str, str] = Field(
            default_factory=dict,
            description="For each graph input, the key of its array in the file (default: the input's name).",
        )

    def load(self, base_dir: Path, rng: np.random.Generator) -> dict[str, Array]:
        path = _resolve(base_dir, self.options.path)
        arrays = read_npz(path, "data file")
        out = _FiniteArrays(path, arrays)
        for name, key in self.options.arrays.items():
            if key not in arrays:
                raise graphnet.DataError(
                    f"arrays.{name}: no array {key!r} in the file{suggest(key, arrays)}; "
                    f"it holds: {', '.join(arrays) or 'nothing'}",
                    str(path),
                )
            out.keys_of[name] = key
            out[name] = arrays[key]
        return out

    def read_inputs(self, path: Path, shapes: Mapping[str, Shape]) -> dict[str, Array] | None:
        """An NPZ file for ``predict``: each input from its key of ``arrays`` (default: its
        name); any other file is not read here."""
        if path.suffix.lower() != ".npz":
            return None
        return read_npz_inputs(path, shapes, self.options.arrays, self.text_inputs)


class _FiniteArrays(dict[str, Array]):
    """The arrays of an NPZ file, each checked for NaN and Inf when the engine takes it, so that
    an error names the file and the array's key, and arrays no input reads are not checked."""

    def __init__(self, path: Path, arrays: dict[str, Array]) -> None:
        super().__init__(arrays)
        self.path = path
        self.keys_of: dict[str, str] = {}

    def __getitem__(self, name: str) -> Array:
        array = super().__getitem__(name)
        # a float64 sum is finite exactly when every value is (bar overflow): no temporary array
        if np.issubdtype(array.dtype, np.inexact) and not np.isfinite(array.sum(dtype=np.float64)):
            bad = np.argwhere(~np.isfinite(array))
            if len(bad):
                index = tuple(int(i) for i in bad[0])
                at = f"sample {index[0]} holds" if index else "holds"
                raise graphnet.DataError(
                    f"array {self.keys_of.get(name, name)!r}: {at} {array[index].item()!r} "
                    f"at {list(index[1:])}; the data must be finite",
                    str(self.path),
                )
        return array


@graphnet.hookimpl
def graphnet_data_sources() -> list[type[graphnet.DataSource]]:
    return [Synthetic, CSV, NPZ]
