"""Built-in data sources: ``synthetic``, ``csv`` and ``npz``."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import graphnet
from graphnet.base import Array
from graphnet.plugins import suggest
from graphnet.runfolder import read_npz


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

    def load(self, base_dir: Path, rng: np.random.Generator) -> dict[str, Array]:
        path = _resolve(base_dir, self.options.path)
        header, rows = read_csv(path, self.options.delimiter)
        out: dict[str, Array] = {}
        for name, wanted in self.options.columns.items():
            out[name] = csv_columns(path, header, rows, wanted, f"columns.{name}")
        return out


def read_csv(path: Path, delimiter: str = ",") -> tuple[list[str], list[list[str]]]:
    """The header and the rows of a CSV file; errors name the file."""
    try:
        with path.open(newline="", encoding="utf-8") as file:
            lines = list(csv.reader(file, delimiter=delimiter))
    except FileNotFoundError:
        raise graphnet.DataError("data file not found", str(path)) from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise graphnet.DataError(f"cannot be read as CSV: {error}", str(path)) from None
    if not lines:
        raise graphnet.DataError("the CSV file is empty (it needs a header row)", str(path))
    header = [name.strip() for name in lines[0]]
    return header, lines[1:]


def csv_columns(
    path: Path, header: list[str], rows: list[list[str]], wanted: list[str], option: str
) -> Array:
    """The named columns as a float array; errors give the line and column of a bad cell."""
    indices = []
    for column in wanted:
        if column not in header:
            raise graphnet.DataError(
                f"{option}: no column {column!r} in the header{suggest(column, header)}; "
                f"columns: {', '.join(header)}",
                str(path),
            )
        indices.append(header.index(column))
    out = np.empty((len(rows), len(indices)))
    for r, row in enumerate(rows):
        if len(row) != len(header):
            raise graphnet.DataError(
                f"{len(row)} fields, the header has {len(header)}", f"{path}:{r + 2}"
            )
        for c, index in enumerate(indices):
            cell = row[index]
            try:
                out[r, c] = float(cell)
            except ValueError:
                raise graphnet.DataError(
                    f"column {header[index]!r}: {cell!r} is not a number", f"{path}:{r + 2}"
                ) from None
    return out


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
        out = dict(arrays)
        for name, key in self.options.arrays.items():
            if key not in arrays:
                raise graphnet.DataError(
                    f"arrays.{name}: no array {key!r} in the file; it holds: {', '.join(arrays) or 'nothing'}",
                    str(path),
                )
            out[name] = arrays[key]
        return out


@graphnet.hookimpl
def graphnet_data_sources() -> list[type[graphnet.DataSource]]:
    return [Synthetic, CSV, NPZ]
