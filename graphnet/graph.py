"""From a validated spec to a graph: the plugin of every node, a topological order and shapes.

Everything here is iterative, so a chain of ten thousand nodes is as easy as three. The order
is deterministic: among nodes ready at the same time, the one written first in the file comes
first. Shapes are inferred through each layer's ``output_shape`` before any array exists.

A graph holds plugin classes and options, never the instances that train: every network built
from it creates its own (:meth:`Node.make`), so two networks of one spec share no state.
"""

from __future__ import annotations

import heapq
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from graphnet.base import Layer, Loss, Shape
from graphnet.calls import Caller
from graphnet.errors import GraphnetWarning, ShapeError, SpecError, suggest
from graphnet.spec import LossSpec, NodeSpec, Spec


@dataclass
class Node:
    """One layer node: its spec section, inputs, inferred output shape and how to call it."""

    index: int  # position in the spec's `nodes` list
    name: str
    type: str
    section: NodeSpec
    inputs: tuple[str, ...]
    caller: Caller
    shape: Shape = ()
    input_shapes: tuple[Shape, ...] = ()

    def make(self) -> Layer:
        """A new instance of this node's layer."""
        layer: Layer = self.section.make(self.caller)
        return layer


@dataclass
class LossNode:
    """One loss: its spec section, the names it reads, its weight and how to call it."""

    index: int
    type: str
    section: LossSpec
    inputs: tuple[str, ...]
    weight: float
    caller: Caller

    def make(self) -> Loss:
        """A new instance of this loss."""
        loss: Loss = self.section.make(self.caller)
        return loss


@dataclass
class Graph:
    """A network ready to be built: nodes in topological order and every per-sample shape."""

    spec: Spec
    inputs: dict[str, Shape]
    nodes: list[Node]
    losses: list[LossNode]
    outputs: list[str]
    shapes: dict[str, Shape] = field(default_factory=dict)

    @property
    def dtype(self) -> str:
        return self.spec.dtype


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


def _infer(spec: Spec, node: Node, layer: Layer, shapes: dict[str, Shape]) -> Shape:
    node.input_shapes = tuple(shapes[ref] for ref in node.inputs)
    listing = f"input shapes: {', '.join(f'{ref} {list(shapes[ref])}' for ref in node.inputs)}"
    try:
        returned: Any = layer.output_shape(node.input_shapes)
    except ShapeError as error:  # the spec asks for what does not fit: the user's to fix
        raise error.add_context(
            before=node.caller.label,
            after=f"; {listing}",
            where=spec.where(("nodes", node.index, "inputs")),
        ) from None
    except Exception as error:
        raise node.caller.failed("output_shape", error).add_context(after=f"; {listing}") from None
    try:
        shape: Shape = tuple(int(d) for d in returned)
        valid = all(d >= 1 for d in shape)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise node.caller.wrong(
            "output_shape", f"returned {returned!r}, not a list of positive sizes"
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
    repeats = {r.first_output: r for r in spec.source.repeats}
    nodes: list[Node] = []
    for i in _order(spec, layer_names):
        section = spec.nodes[i]
        label = f"node {section.name!r} ({section.type})"
        caller = Caller(label, spec.where(("nodes", i)), section.package)
        _arity(spec, label, section.plugin.arity, len(section.inputs), ("nodes", i, "inputs"))
        node = Node(i, section.name, section.type, section, tuple(section.inputs), caller)
        node.shape = shapes[node.name] = _infer(spec, node, node.make(), shapes)
        nodes.append(node)
        repeat = repeats.get(node.name)
        if repeat is not None and shapes[repeat.first_input] != node.shape:
            raise ShapeError(
                f"block {repeat.block!r} is repeated, so each copy reads the one before it, but "
                f"its output shape {list(node.shape)} ({node.name}) differs from its input's "
                f"{list(shapes[repeat.first_input])} ({repeat.first_input}); repeat a block "
                "that keeps the shape, or remove repeat",
                repeat.where,
            )

    losses = [_loss(spec, i, shapes) for i in range(len(spec.loss))]
    return Graph(
        spec, {n: tuple(s.shape) for n, s in spec.inputs.items()}, nodes, losses, outputs, shapes
    )


def _loss(spec: Spec, i: int, shapes: dict[str, Shape]) -> LossNode:
    section = spec.loss[i]
    path = ("loss", i, "inputs")
    label = f"loss {section.type!r}"
    _arity(spec, label, section.plugin.arity, len(section.inputs), path)
    if all(ref in spec.inputs for ref in section.inputs):
        raise SpecError(
            f"{label} reads only graph inputs ({', '.join(section.inputs)}), so nothing would "
            "be trained: give it a node's output",
            spec.where(path),
        )
    node = LossNode(
        i,
        section.type,
        section,
        tuple(section.inputs),
        section.weight,
        Caller(label, spec.where(("loss", i)), section.package),
    )
    input_shapes = [shapes[ref] for ref in section.inputs]
    listing = ", ".join(
        f"{ref} {list(s)}" for ref, s in zip(section.inputs, input_shapes, strict=True)
    )
    try:
        node.make().check_shapes(input_shapes)
    except ShapeError as error:
        raise error.add_context(
            before=label, after=f"; input shapes: {listing}", where=spec.where(path)
        ) from None
    except Exception as error:
        raise node.caller.failed("check_shapes", error) from None
    return node


def warn_unused(graph: Graph) -> None:
    """Warn about every node that reaches neither a loss nor an output: it is never trained;
    and about a node feeding a loss that applies the node's function itself (``Loss.applies``:
    a softmax before cross_entropy)."""
    for message in _unused(graph) + _applied_twice(graph):
        warnings.warn(message, GraphnetWarning, stacklevel=2)


def _applied_twice(graph: Graph) -> list[str]:
    types = {node.name: node.type for node in graph.nodes}
    out = []
    for loss in graph.losses:
        applies = getattr(loss.section.plugin, "applies", None)
        first = loss.inputs[0]
        if applies and types.get(first) == applies.lower():
            out.append(
                f"{graph.spec.where(('loss', loss.index))}: node {first!r} ({applies}) feeds "
                f"loss {loss.type!r}, which applies {applies} itself: give it the node's input"
            )
    return out


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
