"""A sweep's trials and its folder's table: the grid (``--grid`` values read as ``--set``
values), every trial's spec validated before any is trained, the rows of ``sweep.csv`` read
from the trials' run folders, and the table of trials ranked by the monitored column."""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graphnet.errors import GraphnetError, SpecError
from graphnet.files import write_atomic
from graphnet.runfolder import RunFolder
from graphnet.spec import Spec

SWEEP_CSV = "sweep.csv"
FINISHED = ("done", "diverged")  # --resume skips these; failed and interrupted trials run again
MAXIMIZED = ("accuracy", "r2")  # monitored columns where higher is better


@dataclass
class Trial:
    """One combination of the grid with one seed: its number, values and validated spec."""

    number: int
    values: dict[str, Any]
    seed: int
    spec: Spec
    row: dict[str, Any] = field(default_factory=dict)
    saved_epoch: int = 0  # the epoch of the newest checkpoint a worker sent

    @property
    def name(self) -> str:
        return f"trial-{self.number:03d}"


def parse_grid(
    grid: Mapping[str, Sequence[Any]] | Sequence[str], flag: str = "grid"
) -> dict[str, list[Any]]:
    """``KEY=V1,V2,...`` strings (each value read as a YAML scalar, as ``--set``) or a mapping
    of key to values -> ``{key: [values]}``."""
    from graphnet.specfile import _parse_override

    if isinstance(grid, Mapping):
        out = {str(k): list(v) for k, v in grid.items()}
    else:
        out = {}
        for item in grid:
            key, sep, text = item.partition("=")
            if not sep or not key.strip() or not text.strip():
                raise SpecError(f"{flag} takes KEY=V1,V2,..., e.g. train.optimizer.lr=0.01,0.1")
            values = []
            for part in text.split(","):
                try:
                    values.append(_parse_override(f"{key.strip()}={part}")[1])
                except SpecError as error:
                    raise SpecError(error.message.replace("--set", flag, 1)) from None
            out[key.strip()] = values
    for key, values in out.items():
        if not values:
            raise SpecError(f"{flag} {key}: no values")
    if not out:
        raise SpecError(f"{flag}: give at least one KEY=V1,V2,...")
    return out


def make_trials(
    spec_path: str | Path,
    grid: Mapping[str, list[Any]],
    seeds: int,
    sample: int | None,
    plugins: Sequence[str],
    names: Mapping[str, str],
) -> list[Trial]:
    """Every trial, each spec validated: the combinations (or ``sample`` of them, drawn with
    the spec's seed) times ``seeds`` seeds (the spec's seed, and the ones after it)."""
    from graphnet.api import load_spec

    base = load_spec(spec_path, plugins=plugins)
    if seeds < 1:
        raise SpecError(f"{names['seeds']} must be at least 1")
    combos = list(itertools.product(*grid.values()))
    if sample is not None:
        if sample < 1:
            raise SpecError(f"{names['sample']} must be at least 1")
        rng = np.random.default_rng(base.seed)
        chosen = rng.choice(len(combos), size=min(sample, len(combos)), replace=False)
        combos = [combos[i] for i in sorted(chosen)]
    trials: list[Trial] = []
    for combo in combos:
        values = dict(zip(grid, combo, strict=True))
        for k in range(seeds):
            seed = base.seed + k
            try:
                spec = load_spec(spec_path, {**values, "seed": seed}, plugins)
            except GraphnetError as error:
                text = str(error).replace("--set ", f"{names['grid']} ")
                raise SpecError(
                    f"trial {len(trials) + 1} ({_describe(values, seed)}): {text}"
                ) from None
            trials.append(Trial(len(trials) + 1, values, seed, spec))
    return trials


def _describe(values: Mapping[str, Any], seed: int) -> str:
    return ", ".join([*(f"{k}={v}" for k, v in values.items()), f"seed={seed}"])


def row(
    trial: Trial,
    keys: Mapping[str, list[Any]],
    column: str,
    out: Path,
    status: str,
    seconds: float,
) -> dict[str, Any]:
    """One row of ``sweep.csv``, read from the trial's run folder."""
    folder = RunFolder(out / trial.name)
    records = folder.read_metrics() if folder.file("metrics.csv").is_file() else []
    last = records[-1] if records else {}
    values = [(r[column], r["epoch"]) for r in records if not math.isnan(r.get(column, math.nan))]
    pick = max if column.removeprefix("val_").endswith(MAXIMIZED) else min
    best = pick(values, key=lambda v: v[0]) if values else (math.nan, "")
    return {
        "trial": trial.name,
        **trial.values,
        "seed": trial.seed,
        "status": status,
        "epochs": last.get("epoch", 0),
        "loss": last.get("loss", math.nan),
        "val_loss": last.get("val_loss", math.nan),
        "monitor": column,
        "best": best[0],
        "best_epoch": best[1],
        "seconds": round(seconds, 3),
    }


def write_rows(path: Path, rows: Sequence[Mapping[str, Any]], keys: Mapping[str, Any]) -> None:
    columns = ["trial", *keys, "seed", "status", "epochs", "loss", "val_loss"]
    columns += ["monitor", "best", "best_epoch", "seconds"]
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row[c]) for c in columns})
    write_atomic(path, text.getvalue().encode())


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return value


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        return {row["trial"]: row for row in csv.DictReader(f)}


def ranked(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> str:
    """The trials as a table, best ``monitor`` first (trials without one last)."""
    if not rows:
        return ""
    column = rows[0]["monitor"]
    sign = -1 if column.removeprefix("val_").endswith(MAXIMIZED) else 1

    def order(row: Mapping[str, Any]) -> tuple[bool, float]:
        best = row["best"]
        missing = not isinstance(best, float) or math.isnan(best)
        return (missing, 0.0 if missing else sign * best)

    header = ["trial", *keys, "seed", "status", f"best {column}", "epoch", "seconds"]
    table = [header]
    for row in sorted(rows, key=order):
        best = row["best"]
        table.append(
            [
                row["trial"],
                *(str(row[k]) for k in keys),
                str(row["seed"]),
                row["status"],
                "" if not isinstance(best, float) or math.isnan(best) else f"{best:.6g}",
                str(row["best_epoch"]),
                f"{row['seconds']:.1f}",
            ]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in table)
