"""The Python API: ``load_spec``, ``build``, ``load_run`` and ``train``.

The data flows one way: a spec file is read (:mod:`graphnet.specfile`), validated
(:mod:`graphnet.spec`), turned into a graph (:mod:`graphnet.graph`), built into a network
(:mod:`graphnet.network`) and trained (:mod:`graphnet.run`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from graphnet import blocks, specfile
from graphnet.errors import DataError
from graphnet.graph import Graph, build_graph, warn_unused
from graphnet.network import SPEC_DIR, Network, build
from graphnet.npzfile import read_npz
from graphnet.registry import get_registry
from graphnet.runfolder import CHECKPOINT, SPEC, WEIGHTS, RunFolder
from graphnet.spec import Spec, validate

if TYPE_CHECKING:  # the training modules load when training starts
    from graphnet.run import History
    from graphnet.trainer import Reporter


def load_graph(
    path: str | Path,
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
    plugins: Sequence[str] = (),
    *,
    resolved: bool = False,
) -> Graph:
    """The graph of the spec at ``path``: read, overridden, blocks expanded, validated,
    ordered and shaped. Warns about nodes that are never trained. ``resolved`` is a spec
    graphnet wrote (a run's ``spec.yaml``), whose blocks are expanded already."""
    data, source = specfile.read(path)
    if overrides:
        specfile.apply_overrides(data, overrides, source)
    graph = graph_of(data, source, plugins, resolved=resolved)
    warn_unused(graph)
    return graph


def graph_of(
    data: dict[str, Any], source: specfile.Source, plugins: Sequence[str], *, resolved: bool = False
) -> Graph:
    """The graph of plain spec data (changed in place): blocks expanded, validated, ordered
    and shaped."""
    registry = get_registry(plugins)
    blocks.expand(data, source, registry, resolved=resolved)
    return build_graph(validate(data, source, registry))


def load_spec(
    path: str | Path,
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
    plugins: Sequence[str] = (),
) -> Spec:
    """Read, override, validate and check the graph of the spec at ``path``.

    ``overrides`` are ``--set`` values: ``{"train.epochs": 3}`` or ``["train.epochs=3"]``.
    ``plugins`` are extra plugin modules or files, as ``--plugin``.
    """
    return load_graph(path, overrides, plugins).spec


def load_run(run_dir: str | Path, plugins: Sequence[str] = ()) -> Network:
    """The trained network of a run folder: its ``spec.yaml`` with its ``weights.npz``."""
    folder = RunFolder(run_dir)
    if not folder.file(SPEC).is_file():
        raise DataError(f"not a run folder: it has no {SPEC}", str(run_dir))
    if not folder.file(WEIGHTS).is_file():
        raise DataError(f"the run has no {WEIGHTS} (did it finish?)", str(run_dir))
    network = build(load_graph(folder.file(SPEC), plugins=plugins, resolved=True).spec)
    weights = read_npz(folder.file(WEIGHTS), "weights file")
    network.load_weights(weights, str(folder.file(WEIGHTS)))
    spec = network.graph.spec
    if spec.data is not None and spec.data.normalize and not network.normalizer.shift:
        raise DataError(
            f"the run's {WEIGHTS} has no data/<input>/shift and scale, but its spec normalizes",
            str(folder.file(WEIGHTS)),
        )
    checkpoint = folder.read_checkpoint() if folder.file(CHECKPOINT).is_file() else None
    if checkpoint is not None and SPEC_DIR in checkpoint:  # evaluate reads the run's data there
        spec.base_dir = Path(np.asarray(checkpoint[SPEC_DIR], dtype=np.uint8).tobytes().decode())
    return network


def train(
    spec: Spec | str | Path,
    out_dir: str | Path | None = None,
    weights: str | Path | Mapping[str, Any] | None = None,
    progress: bool = False,
    *,
    resume: bool = False,
    reporter: Reporter | None = None,
    names: Mapping[str, str] | None = None,
) -> History:
    """Train as ``graphnet run`` does: write the run folder and return one record per epoch.

    ``spec`` is a :class:`Spec` or the path of a spec file; ``out_dir=None`` is the folder
    ``graphnet run`` picks without ``--out`` (``runs/<name>``); ``weights`` (a path or a dict
    of arrays) starts from those parameters, as ``--weights``; ``progress=True`` prints what
    ``graphnet run`` prints, on standard error. The history's ``test`` holds the test split's
    scores. ``names`` is how messages name the arguments (the command line passes its flags).
    """
    from graphnet import run

    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    if reporter is None and progress:
        from graphnet.progress import reporter_for

        reporter = reporter_for(quiet=False)
        try:
            return run.train(spec, out_dir, weights, resume=resume, reporter=reporter, names=names)
        finally:
            reporter.close()
    return run.train(spec, out_dir, weights, resume=resume, reporter=reporter, names=names)


def evaluate(run_dir: str | Path, inputs: str | Path | None = None) -> dict[str, float]:
    """``loss`` and every metric of the trained run in ``run_dir`` on its test split (else its
    validation split) or on ``inputs``, a CSV or NPZ file holding inputs and targets."""
    from graphnet.evaluation import evaluation, scores

    network = load_run(run_dir)
    _, arrays = evaluation(network, inputs)
    return scores(network, arrays)


def sweep(
    spec: str | Path,
    grid: Mapping[str, Sequence[Any]] | Sequence[str],
    seeds: int = 1,
    sample: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    out_dir: str | Path | None = None,
    monitor: str | None = None,
    resume: bool = False,
    **options: Any,
) -> list[dict[str, Any]]:
    """Train every combination of ``grid`` (``{"train.optimizer.lr": [0.01, 0.1]}`` or
    ``["train.optimizer.lr=0.01,0.1"]``) with ``seeds`` seeds on dask.distributed, as
    ``graphnet sweep`` does; the rows of ``sweep.csv``. Needs the ``sweep`` extra."""
    from graphnet.sweeps import sweep as run_sweep

    return run_sweep(
        spec, grid, seeds, sample, workers, scheduler, out_dir, monitor, resume, **options
    )


def export_onnx(
    run_dir: str | Path,
    path: str | Path,
    opset: int | None = None,
    plugins: Sequence[str] = (),
    *,
    names: Mapping[str, str] | None = None,
) -> None:
    """Write the trained run in ``run_dir`` as an ONNX model to ``path`` (``opset``: the ONNX
    opset to write, default 17): its inputs the spec's inputs the outputs need, its outputs the
    spec's ``outputs``, ``data.normalize`` folded in. Needs the ``onnx`` extra. ``names`` is
    how messages name the arguments (the command line passes its flags)."""
    names = names or {}
    path = Path(path)
    inside = Path(run_dir).resolve() in path.resolve().parents
    if inside or RunFolder(path.parent).is_run():
        raise DataError(
            f"{names.get('path', 'path')}: {path.parent} is a run folder; write the model "
            "elsewhere",
            str(path),
        )
    network = load_run(run_dir, plugins)
    from graphnet.onnx_export import write_model  # onnx loads here, and only here

    write_model(network, path, opset)


__all__ = [
    "build",
    "evaluate",
    "export_onnx",
    "load_graph",
    "load_run",
    "load_spec",
    "sweep",
    "train",
]
