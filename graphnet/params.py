"""Parameters: drawn per node, kept in one flat buffer, checked when loaded from a file.

Parameters are keyed ``<node>/<param>`` (as in ``weights.npz``). They and their gradients live
in two flat buffers; the arrays a plugin sees are views of them, so an optimizer that knows
about ``flat`` can update everything in one vectorised call.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from graphnet.base import Array, Layer
from graphnet.errors import DataError
from graphnet.graph import Graph


def init_rng(seed: int, node: str) -> np.random.Generator:
    """The generator a node draws its initial parameters from: one per node name and seed, so
    the order of the nodes in the file does not change any of them."""
    return np.random.default_rng([seed, 1, *node.encode()])


class ParamDict(dict[str, Array]):
    """Arrays keyed ``<node>/<param>`` that are views into one flat buffer, ``flat``.

    It is an ordinary dict to a plugin; an optimizer that knows about ``flat`` can update every
    parameter in one vectorised call (the built-in ones do).
    """

    flat: Array


def cut(flat: Array, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, Array]:
    """Views of ``flat``, one per shape, one after the other (as a flat buffer's arrays are
    laid out): a snapshot or checkpoint of a buffer read back as its arrays."""
    views: dict[str, Array] = {}
    offset = 0
    for key, shape in shapes.items():
        size = int(np.prod(shape))
        views[key] = flat[offset : offset + size].reshape(shape)
        offset += size
    return views


def shapes_of(arrays: Mapping[str, Array]) -> dict[str, tuple[int, ...]]:
    """Each array's shape, by key."""
    return {key: array.shape for key, array in arrays.items()}


def flat_views(shapes: Mapping[str, tuple[int, ...]], dtype: np.dtype[Any]) -> ParamDict:
    """A zeroed flat buffer and a view of it for each shape, in order."""
    views = ParamDict()
    views.flat = np.zeros(sum(int(np.prod(s)) for s in shapes.values()), dtype)
    views.update(cut(views.flat, shapes))
    return views


def initial_params(graph: Graph, layers: Mapping[str, Layer]) -> dict[str, Array]:
    """Every node's freshly drawn parameters, keyed ``<node>/<param>``, as the layers give them."""
    fresh: dict[str, Array] = {}
    for node in graph.nodes:
        drawn = node.caller.call(
            "init_params",
            layers[node.name].init_params,
            node.input_shapes,
            init_rng(graph.spec.seed, node.name),
        )
        if not isinstance(drawn, Mapping):
            raise node.caller.wrong(
                "init_params", f"returned {type(drawn).__name__}, not a dict of arrays"
            )
        fresh.update({f"{node.name}/{k}": np.asarray(v) for k, v in drawn.items()})
    return fresh


def by_node(arrays: Mapping[str, Array], graph: Graph) -> dict[str, dict[str, Array]]:
    """``{"hidden/W": a}`` -> ``{"hidden": {"W": a}}``, with an entry for every node."""
    out: dict[str, dict[str, Array]] = {node.name: {} for node in graph.nodes}
    for key, array in arrays.items():
        node, _, param = key.rpartition("/")
        out[node][param] = array
    return out


def checked_weights(
    weights: str | Path | Mapping[str, Any], params: Mapping[str, Array], where: str = "weights"
) -> dict[str, Array]:
    """The arrays of a weights file (or dict) that are to replace ``params``: the same keys,
    shapes and real, finite numbers, or a :class:`DataError` naming the file and key."""
    from graphnet.npzfile import read_npz

    where = str(weights) if isinstance(weights, str | Path) else where
    arrays = read_npz(weights, "weights file") if isinstance(weights, str | Path) else weights
    missing = [k for k in params if k not in arrays]
    extra = [k for k in arrays if k not in params]
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if extra:
            parts.append("unexpected " + ", ".join(extra))
        raise DataError(
            f"{'; '.join(parts)} (the network's parameters are {', '.join(params) or 'none'})",
            where,
        )
    checked: dict[str, Array] = {}
    for key, target in params.items():
        array = np.asarray(arrays[key])
        if array.shape != target.shape:
            raise DataError(
                f"{key}: shape {list(array.shape)}, the network needs {list(target.shape)}", where
            )
        if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
            raise DataError(f"{key}: {array.dtype} array, expected real numbers", where)
        if not np.isfinite(array).all():
            raise DataError(f"{key}: holds NaN or Inf", where)
        with np.errstate(over="ignore"):
            cast = array.astype(target.dtype)
        if not np.isfinite(cast).all():
            value = array.flat[int(np.flatnonzero(~np.isfinite(cast.reshape(-1)))[0])]
            raise DataError(
                f"{key}: {float(value)!r} is too large for {target.dtype} (the spec's dtype)", where
            )
        checked[key] = cast
    return checked
