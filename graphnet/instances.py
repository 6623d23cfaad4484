"""Block instances seen whole: what ``summary`` and ``graph`` show as one row or one box.

A node of the spec that is a block instance expands into many graph nodes (``body.3.fc1``);
:func:`collapse` groups them back under the instance (``body``): its block and number of
copies, its output shape, its parameter count and what it reads from outside. A node that is
no instance is an item of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from graphnet.base import Shape
from graphnet.blocks import instance_of
from graphnet.graph import Graph, Node


@dataclass
class Item:
    """One row of ``summary``, one box of ``graph``: a graph node, or a whole block instance."""

    name: str
    type: str  # the layer type, or the block and its copies: `residual ×3`
    shape: Shape
    params: int = 0
    inputs: list[str] = field(default_factory=list)  # inputs, nodes and instances, by name
    nodes: list[Node] = field(default_factory=list)  # the graph nodes it stands for
    block: bool = False


def parameter_counts(graph: Graph) -> dict[str, int]:
    """The number of trained parameters of each node (layer buffers left out)."""
    from graphnet.network import Network

    counts = dict.fromkeys((node.name for node in graph.nodes), 0)
    for key, array in Network(graph).params.items():
        counts[key.split("/", 1)[0]] += array.size
    return counts


def owners(graph: Graph, expand: bool = False) -> dict[str, str]:
    """The item each input and node belongs to: its spec node's instance, or itself (always
    itself with ``expand``)."""
    origins = graph.spec.source.origins
    out = {name: name for name in graph.inputs}
    for node in graph.nodes:
        origin = origins.get(node.index)
        inside = not expand and origin is not None and origin.instance is not None
        out[node.name] = instance_of(node.name) if inside else node.name
    return out


def collapsed(refs: Iterable[str], owner: Mapping[str, str]) -> list[str]:
    """``refs`` as the items they belong to, each once, in order."""
    return list(dict.fromkeys(owner.get(ref, ref) for ref in refs))


def collapse(graph: Graph, counts: Mapping[str, int], expand: bool = False) -> list[Item]:
    """The graph's nodes grouped into items, in the order of their first node (with
    ``expand``, an item per node)."""
    owner = owners(graph, expand)
    instances = graph.spec.source.instances
    items: dict[str, Item] = {}
    for node in graph.nodes:
        name = owner[node.name]
        item = items.get(name)
        if item is None:
            instance = instances.get(name) if name != node.name else None
            if instance is None:
                item = Item(name, node.type, node.shape)
            else:
                copies = "" if instance.repeat is None else f" ×{instance.repeat}"
                shape = graph.shapes[instance.output]
                item = Item(name, instance.block + copies, shape, block=True)
            items[name] = item
        item.nodes.append(node)
        item.params += counts.get(node.name, 0)
        outside = [ref for ref in node.inputs if owner[ref] != name]
        item.inputs = collapsed([*item.inputs, *outside], owner)
    return list(items.values())
