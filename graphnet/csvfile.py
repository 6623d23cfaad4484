"""CSV tables of numbers: read a file with a header row, pick columns as a float array.

Shared by the ``csv`` data source and ``graphnet predict`` (:func:`read_csv_inputs` reads the
inputs of a network by column name). Errors are ``DataError``s
that name the file, the line and the column of the problem.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphnet.base import Array, Shape
from graphnet.errors import DataError, suggest


@dataclass
class Table:
    """A CSV file read as text: its header, its rows and the line each row starts on."""

    path: Path
    header: list[str]
    rows: list[list[str]]
    lines: list[int]

    def has(self, column: str) -> bool:
        return column in self.header

    def columns(
        self, wanted: Sequence[str], what: str = "", missing: str = "error", text: bool = False
    ) -> Array:
        """The named columns as a float array (rows × columns); errors name line and column.

        ``what`` prefixes the message of a missing column (``columns.x: no column 'a' ...``).
        ``missing`` says what an empty cell is: an error, ``zero`` or the column's ``mean``.
        With ``text``, columns holding anything but numbers come back as strings (class names).
        """
        indices = [self._index(column, what) for column in wanted]
        for r, row in enumerate(self.rows):
            if len(row) != len(self.header):
                raise DataError(
                    f"{len(row)} field{'s' if len(row) != 1 else ''}, the header has {len(self.header)}",
                    f"{self.path}:{self.lines[r]}",
                )
        cells = [[row[i].strip() for i in indices] for row in self.rows]
        if text and not all(_is_number(cell) for row in cells for cell in row):
            return np.array(cells, dtype=str).reshape(len(cells), len(indices))
        out = np.empty((len(self.rows), len(indices)))
        for r, row in enumerate(cells):
            for c, cell in enumerate(row):
                if not cell and missing != "error":
                    out[r, c] = 0.0 if missing == "zero" else np.nan
                    continue
                out[r, c] = self._number(cell, indices[c], r)
        if missing == "mean":
            for c in range(out.shape[1]):
                empty = np.isnan(out[:, c])
                out[empty, c] = out[~empty, c].mean() if (~empty).any() else 0.0
        return out

    def _index(self, column: str, what: str) -> int:
        if column not in self.header:
            prefix = f"{what}: " if what else ""
            raise DataError(
                f"{prefix}no column {column!r} in the header{suggest(column, self.header)}; "
                f"columns: {', '.join(self.header)}",
                f"{self.path}:1",
            )
        return self.header.index(column)

    def _number(self, cell: str, index: int, r: int) -> float:
        where = f"{self.path}:{self.lines[r]}"
        if not cell:
            raise DataError(
                f"column {self.header[index]!r}: empty cell (the csv source's `missing: zero` "
                "or `missing: mean` fills empty cells)",
                where,
            )
        try:
            value = float(cell)
        except ValueError:
            raise DataError(
                f"column {self.header[index]!r}: {cell!r} is not a number", where
            ) from None
        if not np.isfinite(value):
            raise DataError(
                f"column {self.header[index]!r}: {cell!r} is not a finite number", where
            )
        return value


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def read_table(path: str | Path, delimiter: str = ",") -> Table:
    """Read a CSV file whose first row names the columns; errors name the file."""
    path = Path(path)
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:  # a BOM is not a column name
            reader = csv.reader(file, delimiter=delimiter)
            start = 1
            for row in reader:
                rows.append(row)
                lines.append(start)
                start = reader.line_num + 1
    except FileNotFoundError:
        raise DataError("data file not found", str(path)) from None
    except IsADirectoryError:
        raise DataError("is a folder, not a CSV file", str(path)) from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"cannot be read as CSV: {error}", str(path)) from None
    if not rows:
        raise DataError("the CSV file is empty (it needs a header row)", str(path))
    header = [name.strip() for name in rows[0]]
    return Table(path, header, rows[1:], lines[1:])


def column_names(name: str, shape: Shape) -> list[str]:
    """``<name>_0``, ``<name>_1``, … for every element of a per-sample ``shape``."""
    return [f"{name}_{i}" for i in range(math.prod(shape))]


def read_csv_inputs(
    path: str | Path | Table,
    shapes: Mapping[str, Shape],
    delimiter: str = ",",
    mapped: Mapping[str, tuple[Sequence[str], str]] | None = None,
    missing: str = "error",
    text: Collection[str] = (),
) -> dict[str, Array]:
    """Arrays of per-sample ``shapes`` from a CSV file, keyed by input name.

    An input in ``mapped`` reads its columns, described in messages as given there; any other
    reads the columns ``<input>_0``, ``<input>_1``, … (``<input>`` alone for a one-element
    input), flattened in C order. Errors name the file, the line and the column.
    """
    table = path if isinstance(path, Table) else read_table(path, delimiter)
    out: dict[str, Array] = {}
    for name, shape in shapes.items():
        if mapped is not None and name in mapped:
            columns, described, by_convention = list(mapped[name][0]), mapped[name][1], False
        else:
            columns, described, by_convention = _conventional_columns(table, name, shape)
        values = table.columns(columns, described, missing, name in text)
        if by_convention:
            _check_width(table, name, columns, described)
        out[name] = values.reshape(len(values), *shape)
    return out


def _conventional_columns(table: Table, name: str, shape: Shape) -> tuple[list[str], str, bool]:
    """The columns holding input ``name`` by the naming convention, how to describe them in a
    message, and whether they are named ``<input>_<i>``."""
    columns = column_names(name, shape)
    described = f"input {name!r} of shape {list(shape)} (columns {', '.join(columns)})"
    if len(columns) == 1 and table.has(name):
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
