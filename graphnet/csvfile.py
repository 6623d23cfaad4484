"""CSV tables of numbers: read a file with a header row, pick columns as a float array.

Shared by the ``csv`` data source and ``graphnet predict``. Errors are ``DataError``s
that name the file, the line and the column of the problem.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphnet.base import Array
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

    def columns(self, wanted: Sequence[str], what: str = "") -> Array:
        """The named columns as a float array (rows × columns); errors name line and column.

        ``what`` prefixes the message of a missing column (``columns.x: no column 'a' ...``).
        """
        indices = []
        for column in wanted:
            if column not in self.header:
                prefix = f"{what}: " if what else ""
                raise DataError(
                    f"{prefix}no column {column!r} in the header{suggest(column, self.header)}; "
                    f"columns: {', '.join(self.header)}",
                    f"{self.path}:1",
                )
            indices.append(self.header.index(column))
        out = np.empty((len(self.rows), len(indices)))
        for r, row in enumerate(self.rows):
            if len(row) != len(self.header):
                raise DataError(
                    f"{len(row)} field{'s' if len(row) != 1 else ''}, the header has {len(self.header)}",
                    f"{self.path}:{self.lines[r]}",
                )
            for c, index in enumerate(indices):
                cell = row[index]
                try:
                    out[r, c] = value = float(cell)
                except ValueError:
                    raise DataError(
                        f"column {self.header[index]!r}: {cell!r} is not a number",
                        f"{self.path}:{self.lines[r]}",
                    ) from None
                if not np.isfinite(value):
                    raise DataError(
                        f"column {self.header[index]!r}: {cell!r} is not a finite number",
                        f"{self.path}:{self.lines[r]}",
                    )
        return out


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
