"""``graphnet evaluate``: the loss and every metric of a trained network on a data set, and the
confusion matrix of each classification loss.

Scores are computed as training computes ``val_loss`` and the ``val_`` metrics (on normalized
data, in one pass over the whole set), so evaluating a run on its validation split gives the
last epoch's validation figures. :func:`test_scores` is what a run records for its test split
(``results.json``'s ``test``, the ``done:`` line).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graphnet.base import Array
from graphnet.calls import Caller
from graphnet.errors import DataError
from graphnet.graph import ancestors
from graphnet.network import Network
from graphnet.spec import Spec


@dataclass
class Confusion:
    """Counts of (true class, predicted class) for one classification loss."""

    loss: str  # ``<prediction> vs <target>``
    classes: list[str]
    counts: Array  # [true, predicted]


def loss_inputs(network: Network) -> list[str]:
    """The graph inputs the losses read (targets included), in the spec's order."""
    needed = ancestors(network.graph, [ref for loss in network.graph.losses for ref in loss.inputs])
    return [name for name in network.graph.inputs if name in needed]


def _values(network: Network, arrays: Mapping[str, Array]) -> list[Any]:
    values = network.values(arrays, loss_inputs(network))
    with np.errstate(all="ignore"):
        network.losses(values, training=False)  # fills every node's output
    return values


def scores(network: Network, arrays: Mapping[str, Array]) -> dict[str, float]:
    """``loss`` and every metric (columns named as in ``metrics.csv``) on ``arrays``, which
    are normalized as the network trains on them."""
    spec = network.graph.spec
    values = network.values(arrays, loss_inputs(network))
    with np.errstate(all="ignore"):
        total, _ = network.losses(values, training=False)
    out = {"loss": float(total)}
    losses = network.graph.losses
    for i, name in enumerate(spec.train.metrics):
        entry = spec.registry.entry("metric", name)
        for loss in losses:
            column = name if len(losses) == 1 else f"{loss.inputs[0]}_{name}"
            caller = Caller(
                f"metric {column!r}", spec.where(("train", "metrics", i)), entry.package
            )
            metric = caller.call("__init__", entry.cls)
            prediction = values[network.slots[loss.inputs[0]]]
            target = values[network.slots[loss.inputs[-1]]]
            out[column] = float(caller.call("compute", metric.compute, prediction, target))
    return out


def test_scores(spec: Spec, network: Network, test: Mapping[str, Array]) -> dict[str, float] | None:
    """What a run records for its test split (``results.json``'s ``test``): ``loss`` and every
    metric, once, at the end; None without a test split."""
    return scores(network, test) if test else None


def confusions(network: Network, arrays: Mapping[str, Array]) -> list[Confusion]:
    """The confusion matrix of every classification loss (one whose plugin ``applies`` softmax
    or sigmoid) on ``arrays``, labelled with the target's ``classes`` when it has them."""
    values = _values(network, arrays)
    spec = network.graph.spec
    out = []
    for loss in network.graph.losses:
        applies = getattr(loss.section.plugin, "applies", None)
        if not applies:
            continue
        z = values[network.slots[loss.inputs[0]]]
        t = values[network.slots[loss.inputs[-1]]]
        if applies == "softmax":
            k = z.shape[-1]
            predicted = z.argmax(axis=-1).ravel()
            true = (t[..., 0] if t.shape[-1] == 1 else t.argmax(axis=-1)).ravel()
        else:
            k, predicted, true = 2, (z > 0).ravel(), (t >= 0.5).ravel()
        counts = np.zeros((k, k), dtype=np.int64)
        np.add.at(counts, (true.astype(np.intp), predicted.astype(np.intp)), 1)
        target = loss.inputs[-1]
        named = spec.inputs[target].classes if target in spec.inputs else None
        names = list(named) if isinstance(named, list) else [str(i) for i in range(k)]
        out.append(Confusion(f"{loss.inputs[0]} vs {target}", names, counts))
    return out


def format_confusion(confusion: Confusion) -> str:
    """A confusion matrix as a text table: rows the true classes, columns the predicted."""
    names = confusion.classes
    rows = [["true \\ predicted", *names]]
    rows += [
        [name, *(str(int(c)) for c in row)]
        for name, row in zip(names, confusion.counts, strict=True)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return f"confusion of {confusion.loss}:\n" + "\n".join(lines)


def check_output(path: Path) -> None:
    """Refuse a picture path inside a run folder: evaluate never writes into one."""
    from graphnet.runfolder import RunFolder

    folder = Path(path).resolve().parent
    for candidate in (folder, *folder.parents):
        if RunFolder(candidate).is_run():
            raise DataError(
                "--output is inside a run folder; evaluate never writes into one", str(path)
            )


def draw_confusions(items: Sequence[Confusion], path: Path) -> None:
    """The confusion matrices as one picture (matplotlib's object API on an Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from graphnet.files import write_output

    figure = Figure(figsize=(4.5 * len(items), 4.2), layout="constrained")
    FigureCanvasAgg(figure)  # no pyplot: no global state, no GUI backend
    for axes, item in zip(figure.subplots(1, len(items), squeeze=False)[0], items, strict=True):
        axes.imshow(item.counts, cmap="Blues")
        ticks = range(len(item.classes))
        axes.set_xticks(ticks, item.classes, rotation=45, ha="right")
        axes.set_yticks(ticks, item.classes)
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        axes.set_title(item.loss)
        top = item.counts.max() or 1
        for (r, c), count in np.ndenumerate(item.counts):
            color = "white" if count > top / 2 else "black"
            axes.text(c, r, str(int(count)), ha="center", va="center", color=color)
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format=path.suffix.lstrip(".").lower() or "png")
    write_output(path, buffer.getvalue(), "confusion matrix")


# -- the data a run is evaluated on --------------------------------------------------------------


def run_split(network: Network) -> tuple[str, dict[str, Array]]:
    """The run's test split, else its validation split, normalized; its name."""
    from graphnet.dataset import prepare, streams

    spec = network.graph.spec
    if spec.data is None:
        raise DataError("the run's spec has no data section: give an input file")
    data = prepare(spec, streams(spec.seed))  # normalized as the run normalized them
    for name, arrays in (("test", data.test), ("validation", data.validation)):
        if arrays:
            return name, arrays
    raise DataError(
        "the run has neither a test nor a validation split (data.test, data.validation): "
        "give an input file to evaluate on",
        spec.where(("data",)),
    )


def file_arrays(network: Network, path: Path) -> dict[str, Array]:
    """The inputs and targets the losses read, from a CSV or NPZ file, normalized; a missing
    target column or array is a data error naming it."""
    from graphnet.dataset import check_targets, encode
    from graphnet.predict import read_file

    spec = network.graph.spec
    shapes = {name: network.graph.inputs[name] for name in loss_inputs(network)}
    raw, source = read_file(network, path, shapes)
    where = str(path)
    arrays = {name: encode(spec, name, np.asarray(raw[name]), source, where) for name in shapes}
    check_targets(spec, arrays, source, where)
    return network.normalizer.apply(arrays)


def evaluation(network: Network, inputs: str | Path | None = None) -> tuple[str, dict[str, Array]]:
    """What a trained network (``graphnet.load_run``'s) is evaluated on (``test``,
    ``validation`` or the file's path) and those arrays, normalized."""
    if inputs is None:
        return run_split(network)
    path = Path(inputs)
    if not path.is_file():
        raise DataError("input file not found", str(path))
    return str(path), file_arrays(network, path)
