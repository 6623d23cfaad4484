"""From a validated spec to a graph: resolved layers, a topological order and shapes.

Everything here is iterative, so a chain of ten thousand nodes is as easy as three. The order
is deterministic: among nodes ready at the same time, the one written first in the file comes
first. Shapes are inferred through each layer's ``output_shape`` before any array exists.
"""

from __future__ import annotations

import heapq
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from graphnet.base import Layer, Loss, Shape
from graphnet.errors import GraphnetWarning, PluginError, ShapeError, SpecError
from graphnet.plugins import suggest
from graphnet.spec import Spec


@dataclass
class Node:
    """One layer node: its spec position, resolved layer, inputs and inferred output shape."""

    index: int  # position in the spec's `nodes` list
    name: str
    type: str
    layer: Layer
    inputs: tuple[str, ...]
    shape: Shape = ()
    input_shapes: tuple[Shape, ...] = ()


@dataclass
class LossNode:
    """One loss: its resolved plugin, the names it reads, and its weight."""

    index: int
    type: str
    loss: Loss
    inputs: tuple[str, ...]
    weight: float


@dataclass
class Graph:
    """A network ready to be built: nodes in topological order and every per-sample shape."""

    spec: Spec
    inputs: dict[str, Shape]
    nodes: list[Node]
    losses: list[LossNode]
    outputs: list[str]
    shapes: dict[str, Shape] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def dtype(self) -> str:
        return self.spec.dtype

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)


def _check_names(spec: Spec) -> None:
    first: dict[str, int] = {}
    for i, node in enumerate(spec.nodes):
        if node.name in spec.inputs:
            raise SpecError(
                f"node {node.name!r} has the name of an input; inputs and nodes share one namespace",
                spec.where(("nodes", i, "name")),
            )
        if node.name in first:
            line = spec.where(("nodes", first[node.name]))
            raise SpecError(
                f"duplicate node name {node.name!r} (first at {line})",
                spec.where(("nodes", i, "name")),
            )
        first[node.name] = i


def _check_refs(
    spec: Spec, refs: Sequence[str], path: tuple[str | int, ...], known: set[str]
) -> None:
    for j, ref in enumerate(refs):
        if ref not in known:
            where = spec.source.where(path, line_of=(*path, j))
            raise SpecError(f"unknown node {ref!r}{suggest(ref, known)}", where)


def _order(spec: Spec, layer_names: dict[str, int]) -> list[int]:
    """Kahn's algorithm; ready nodes leave in file order. Raises on a cycle, naming it."""
    consumers: list[list[int]] = [[] for _ in spec.nodes]
    waiting = [0] * len(spec.nodes)
    for i, node in enumerate(spec.nodes):
        for ref in node.inputs:
            if ref in layer_names:
                consumers[layer_names[ref]].append(i)
                waiting[i] += 1
    ready = [i for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in consumers[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, j)
    if len(order) < len(spec.nodes):
        raise _cycle_error(spec, layer_names, waiting)
    return order


def _cycle_error(spec: Spec, layer_names: dict[str, int], waiting: list[int]) -> SpecError:
    """Walk back along unfinished inputs from an unfinished node until a node repeats."""
    start = next(i for i, count in enumerate(waiting) if count > 0)
    seen: dict[int, int] = {}
    path: list[int] = []
    i = start
    while i not in seen:
        seen[i] = len(path)
        path.append(i)
        i = next(
            layer_names[r]
            for r in spec.nodes[i].inputs
            if r in layer_names and waiting[layer_names[r]] > 0
        )
    cycle = path[seen[i] :]
    cycle.reverse()  # inputs point backwards; print in data-flow order
    first = min(cycle)
    cycle = cycle[cycle.index(first) :] + cycle[: cycle.index(first)]  # from the first in the file
    names = [spec.nodes[k].name for k in cycle]
    text = " -> ".join([*names, names[0]])
    return SpecError(f"cycle: {text}", spec.where(("nodes", first, "inputs")))


def _infer(spec: Spec, node: Node, shapes: dict[str, Shape]) -> Shape:
    node.input_shapes = tuple(shapes[ref] for ref in node.inputs)
    listing = ", ".join(f"{ref} {list(shapes[ref])}" for ref in node.inputs)
    try:
        returned: Any = node.layer.output_shape(node.input_shapes)
    except ShapeError as error:
        raise ShapeError(
            f"node {node.name!r} ({node.type}): {error.message}; input shapes: {listing}",
            spec.where(("nodes", node.index, "inputs")),
        ) from None
    except Exception as error:
        raise PluginError(
            f"node {node.name!r} ({node.type}): output_shape failed with "
            f"{type(error).__name__}: {error}; input shapes: {listing}",
            spec.where(("nodes", node.index)),
        ) from None
    try:
        shape: Shape = tuple(int(d) for d in returned)
        valid = all(d >= 1 for d in shape)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise PluginError(
            f"node {node.name!r} ({node.type}): output_shape returned {returned!r}, "
            "not a list of positive sizes",
            spec.where(("nodes", node.index)),
        )
    return shape


def _arity(spec: Spec, what: str, arity: int | None, got: int, path: tuple[str | int, ...]) -> None:
    if arity is not None and got != arity:
        plural = "input" if arity == 1 else "inputs"
        raise SpecError(f"{what} takes {arity} {plural}, got {got}", spec.where(path))


def build_graph(spec: Spec) -> Graph:
    """Resolve the spec's plugins, order its nodes and infer every shape."""
    _check_names(spec)
    layer_names = {node.name: i for i, node in enumerate(spec.nodes)}
    known = set(spec.inputs) | set(layer_names)
    for i, node_spec in enumerate(spec.nodes):
        _check_refs(spec, node_spec.inputs, ("nodes", i, "inputs"), known)
    for i, loss_spec in enumerate(spec.loss):
        _check_refs(spec, loss_spec.inputs, ("loss", i, "inputs"), known)
    outputs = (
        list(spec.outputs)
        if spec.outputs is not None
        else list(dict.fromkeys(loss.inputs[0] for loss in spec.loss))
    )
    if spec.outputs is not None:
        _check_refs(spec, spec.outputs, ("outputs",), known)

    shapes: dict[str, Shape] = {name: tuple(s.shape) for name, s in spec.inputs.items()}
    nodes: list[Node] = []
    for i in _order(spec, layer_names):
        node_spec = spec.nodes[i]
        layer: Layer = node_spec.plugin(node_spec.options_model)
        _arity(
            spec,
            f"node {node_spec.name!r} ({node_spec.type})",
            type(layer).arity,
            len(node_spec.inputs),
            ("nodes", i, "inputs"),
        )
        node = Node(i, node_spec.name, node_spec.type, layer, tuple(node_spec.inputs))
        node.shape = shapes[node.name] = _infer(spec, node, shapes)
        nodes.append(node)

    losses: list[LossNode] = []
    for i, loss_spec in enumerate(spec.loss):
        loss: Loss = loss_spec.plugin(loss_spec.options_model)
        path = ("loss", i, "inputs")
        _arity(spec, f"loss {loss_spec.type!r}", type(loss).arity, len(loss_spec.inputs), path)
        input_shapes = [shapes[ref] for ref in loss_spec.inputs]
        try:
            loss.check_shapes(input_shapes)
        except ShapeError as error:
            listing = ", ".join(
                f"{ref} {list(s)}" for ref, s in zip(loss_spec.inputs, input_shapes, strict=True)
            )
            raise ShapeError(
                f"loss {loss_spec.type!r}: {error.message}; input shapes: {listing}",
                spec.where(path),
            ) from None
        losses.append(LossNode(i, loss_spec.type, loss, tuple(loss_spec.inputs), loss_spec.weight))

    graph = Graph(
        spec, {n: tuple(s.shape) for n, s in spec.inputs.items()}, nodes, losses, outputs, shapes
    )
    graph.warnings = _unused(graph)
    for message in graph.warnings:
        warnings.warn(message, GraphnetWarning, stacklevel=2)
    return graph


def ancestors(graph: Graph, names: Sequence[str]) -> set[str]:
    """Every node and input that ``names`` depend on, the names themselves included."""
    producers: dict[str, tuple[str, ...]] = {n.name: n.inputs for n in graph.nodes}
    found: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name not in found:
            found.add(name)
            stack.extend(producers.get(name, ()))
    return found


def _unused(graph: Graph) -> list[str]:
    trained = ancestors(graph, [ref for loss in graph.losses for ref in loss.inputs])
    wanted = set(graph.outputs)
    return [
        f"{graph.spec.where(('nodes', n.index))}: node {n.name!r} reaches no loss: it is never trained"
        for n in graph.nodes
        if n.name not in trained and n.name not in wanted
    ]


def describe(graph: Graph) -> dict[str, Any]:
    """Counts for a one-line summary."""
    return {"inputs": len(graph.inputs), "nodes": len(graph.nodes), "losses": len(graph.losses)}
