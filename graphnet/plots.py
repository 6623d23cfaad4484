"""Loss curves: ``loss.png`` of a run, and several runs overlaid for comparison.

matplotlib is imported only when a picture is drawn, so ``graphnet validate`` never loads it.
The figure draws on an Agg canvas of its own (no ``pyplot``, no ``matplotlib.use``): it needs
no display, and a notebook that imports graphnet keeps its own backend.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphnet.errors import DataError, GraphnetError, GraphnetWarning
from graphnet.files import write_atomic
from graphnet.runfolder import METRICS, SPEC, RunFolder

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

LOSS_PLOT = "loss.png"
NOT_PLOTTED = ("epoch", "seconds")
DECADES = 1.0  # a panel whose values span more than this many powers of ten gets a log y axis
MARKERS_UP_TO = 30  # runs this short get a marker on every epoch


@dataclass
class Curves:
    """One run's metrics.csv as columns: ``epochs`` and a list of values per column."""

    label: str
    epochs: list[int]
    columns: dict[str, list[float]]


def read_curves(run_dir: str | Path, label: str | None = None) -> Curves:
    """The columns of a run folder's ``metrics.csv``; errors name the folder."""
    folder = RunFolder(run_dir)
    where = str(run_dir)
    if not folder.path.exists():
        raise DataError("no such folder", where)
    if not folder.path.is_dir():
        raise DataError("not a run folder (it is a file)", where)
    if not folder.file(METRICS).is_file():
        if not folder.file(SPEC).is_file():
            raise DataError(f"not a run folder: it has no {SPEC} and no {METRICS}", where)
        raise DataError(f"the run has no {METRICS} yet (no epoch was saved)", where)
    rows = folder.read_metrics()
    if not rows:
        raise DataError(f"{METRICS} has no epochs yet", where)
    names = [k for k in rows[0] if k not in NOT_PLOTTED]
    return Curves(
        label if label is not None else folder.path.resolve().name,
        [int(row["epoch"]) for row in rows],
        {name: [float(row[name]) for row in rows] for name in names},
    )


def _panels(runs: Sequence[Curves]) -> list[tuple[str, list[str]]]:
    """The panels to draw, in order: the loss, then one per metric; each with its columns."""
    names: dict[str, None] = {}
    for run in runs:
        names.update(dict.fromkeys(run.columns))
    panels: dict[str, list[str]] = {"loss": []}
    for name in names:
        base = name[len("val_") :] if name.startswith("val_") else name
        panels.setdefault(base, []).append(name)
    return [(title, columns) for title, columns in panels.items() if columns]


def _decades(values: Sequence[float]) -> float:
    """How many powers of ten the finite values span (0 when one is zero or negative)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite or min(finite) <= 0:
        return 0.0
    return math.log10(max(finite) / min(finite))


def _wants_log(values: Sequence[float]) -> bool:
    return _decades(values) > DECADES


def _draw_panel(axes: Axes, name: str, columns: list[str], runs: Sequence[Curves]) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator

    single = len(runs) == 1
    values: list[float] = []
    for index, run in enumerate(runs):
        for column in columns:
            if column not in run.columns:
                continue
            validation = column.startswith("val_")
            last = f"(last {run.columns[column][-1]:.4g})"
            if single:  # training and validation in two colours
                label = f"{'validation' if validation else 'training'} {last}"
                style: dict[str, Any] = {"color": "C1" if validation else "C0"}
            else:  # a colour per run; validation dashed
                label = f"{run.label}{' validation' if validation else ''} {last}"
                style = {"color": f"C{index % 10}", "linestyle": "--" if validation else "-"}
            if len(run.epochs) <= MARKERS_UP_TO:
                style.update(marker="o", markersize=3)
            axes.plot(run.epochs, run.columns[column], label=label, linewidth=1.4, **style)
            values += run.columns[column]
    if _wants_log(values):
        axes.set_yscale("log")
        axes.set_ylabel(f"{name} (log scale)")
        if _decades(values) < 4:  # few decades: label 1, 2 and 5 of each, not only the powers
            axes.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
    else:
        axes.set_ylabel(name)
    axes.grid(True, which="major", alpha=0.35)
    axes.grid(True, which="minor", alpha=0.12)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    axes.legend(fontsize=8, loc="best")


def new_figure(**options: Any) -> Figure:
    """A matplotlib figure on the Agg canvas (no pyplot): what every picture is drawn on."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**options)
    FigureCanvasAgg(fig)
    return fig


def figure(runs: Sequence[Curves], title: str) -> Figure:
    """The loss (and each metric) per epoch of ``runs``, one panel each, sharing the epoch axis."""
    panels = _panels(runs)
    heights = [3.0] + [2.0] * (len(panels) - 1)
    fig = new_figure(figsize=(8, sum(heights) + 0.9), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False, height_ratios=heights)[:, 0]
    for ax, (name, columns) in zip(axes, panels, strict=True):
        _draw_panel(ax, name, columns, runs)
    axes[-1].set_xlabel("epoch")
    fig.suptitle(title, fontsize=12)
    return fig


def save(fig: Figure, path: Path) -> None:
    """Write ``fig`` to ``path`` atomically, in the format its extension names."""
    suffix = path.suffix.lstrip(".").lower()
    formats = fig.canvas.get_supported_filetypes()
    if suffix not in formats:
        raise DataError(
            f"cannot draw a .{suffix or '(no extension)'} file; "
            f"use one of {', '.join('.' + f for f in sorted(formats))}",
            str(path),
        )
    buffer = io.BytesIO()
    fig.savefig(buffer, format=suffix, dpi=110)
    try:
        write_atomic(path, buffer.getvalue())
    except OSError as error:
        raise DataError(f"cannot write the plot: {error.strerror or error}", str(path)) from None


def _what(runs: Sequence[Curves]) -> str:
    """``loss``, ``loss and accuracy``, ``loss, mae and accuracy``: what the panels show."""
    names = [name for name, _ in _panels(runs)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _run_title(curves: Curves, spec_name: str | None) -> str:
    last = curves.epochs[-1]
    name = spec_name or curves.label
    return f"{name}: {_what([curves])} per epoch ({last} epoch{'s' if last != 1 else ''})"


def draw_run(run_dir: str | Path) -> Path:
    """Draw ``loss.png`` in a run folder from its ``metrics.csv``; its path."""
    folder = RunFolder(run_dir)
    curves = read_curves(folder.path)
    try:
        spec = folder.read_spec() or {}
    except GraphnetError:  # the title can do without the spec's name
        spec = {}
    name = spec.get("name") if isinstance(spec.get("name"), str) else None
    path = folder.file(LOSS_PLOT)
    save(figure([curves], _run_title(curves, name)), path)
    return path


def try_draw_run(run_dir: str | Path) -> None:
    """``draw_run``, warning instead of failing: a picture is never worth a finished run."""
    if not RunFolder(run_dir).has_rows():
        return  # no epoch saved: nothing to draw, and nothing to say about it
    try:
        draw_run(run_dir)
    except Exception as error:  # matplotlib missing or failing, a full disk: warn, go on
        reason = (
            str(error) if isinstance(error, GraphnetError) else f"{type(error).__name__}: {error}"
        )
        warnings.warn(f"{run_dir}: {LOSS_PLOT} not drawn: {reason}", GraphnetWarning, stacklevel=2)


def _labels(run_dirs: Sequence[Path]) -> list[str]:
    """Each run's folder name, or the path as given where two runs share a name."""
    names = [p.resolve().name for p in run_dirs]
    return [
        name if names.count(name) == 1 else str(p) for name, p in zip(names, run_dirs, strict=True)
    ]


def compare(run_dirs: Sequence[str | Path], output: str | Path) -> Path:
    """Overlay the loss curves of several runs in one picture at ``output``; its path."""
    paths = [Path(p) for p in run_dirs]
    runs = [read_curves(p, label) for p, label in zip(paths, _labels(paths), strict=True)]
    title = f"{_what(runs)} per epoch: " + ", ".join(run.label for run in runs)
    if len(title) > 90:
        title = f"{_what(runs)} per epoch of {len(runs)} runs"
    out = Path(output)
    save(figure(runs, title), out)
    return out


def draw_sweep(
    path: Path, rows: Sequence[Mapping[str, Any]], keys: Sequence[str], monitor: str
) -> Path:
    """``sweep.png``: ``monitor``'s best value against each swept key, a point per trial."""
    fig = new_figure(figsize=(4.0 * len(keys), 3.4), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys, strict=True):
        points = [
            (row[key], row["best"])
            for row in rows
            if isinstance(row["best"], float) and math.isfinite(row["best"])
        ]
        labels = sorted({str(x) for x, _ in points}, key=_order_key)
        numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x, _ in points)
        xs = [x if numeric else labels.index(str(x)) for x, _ in points]
        ax.scatter(xs, [y for _, y in points], s=18)
        if numeric and points and min(xs) > 0 and max(xs) / min(xs) >= 100:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel(key)
        ax.set_ylabel(f"best {monitor}")
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"{len(rows)} trials", fontsize=11)
    save(fig, path)
    return path


def _order_key(text: str) -> tuple[int, float | str]:
    try:
        return (0, float(text))
    except ValueError:
        return (1, text)


def try_draw_sweep(
    path: Path, rows: Sequence[Mapping[str, Any]], keys: Sequence[str], monitor: str
) -> None:
    """:func:`draw_sweep`, with a warning instead of an error when it cannot be drawn."""
    try:
        draw_sweep(path, rows, keys, monitor)
    except Exception as error:
        warnings.warn(f"{path}: not drawn: {error}", GraphnetWarning, stacklevel=2)
