"""Block instances seen whole: what ``summary`` and ``graph`` show as one row or one box, and
what a run folder's ``spec.yaml`` holds.

A node of the spec that is a block instance expands into many graph nodes (``body.3.fc1``);
:func:`collapse` groups them back under the instance (``body``): its block and number of
copies, its output shape, its parameter count and what it reads from outside. A node that is
no instance is an item of its own. :func:`saved` writes the resolved spec with its blocks and
instances as written, so that the run's ``spec.yaml`` is a spec to run again.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphnet.base import Shape
from graphnet.blocks import instance_of
from graphnet.graph import Graph, Node
from graphnet.spec import Spec


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


def saved(spec: Spec) -> dict[str, Any]:
    """What a run's ``spec.yaml`` holds: the resolved spec, defaults filled in (``to_dict``).

    A spec written with blocks keeps them: ``blocks:`` holds the blocks it defines or includes
    (``include:`` is dropped), each block instance is its node as written, and every other node
    and layer inside a block is filled in with its defaults. Expanding it again gives the same
    nodes, so ``graphnet run <run>/spec.yaml`` trains the same network.
    """
    resolved = spec.to_dict()
    source = spec.source
    written = source.written
    if written is None:
        return resolved
    filled: dict[tuple[Any, ...], dict[str, Any]] = {}  # where a layer was written -> resolved
    for index, origin in source.origins.items():
        where = (origin.instance is None, *origin.path)
        filled.setdefault(where, resolved["nodes"][index])
    blocks = copy.deepcopy(source.blocks)
    for name, block in blocks.items():
        for j, node in enumerate(block["nodes"]):
            defaults = filled.get((False, "blocks", name, "nodes", j), {})
            node.update({k: v for k, v in defaults.items() if k not in node})
    nodes = []
    for i, node in enumerate(written["nodes"]):
        own = filled.get((True, "nodes", i))
        nodes.append(copy.deepcopy(node) if own is None else {**own, "inputs": node["inputs"]})
    losses = written["loss"] if isinstance(written["loss"], list) else [written["loss"]]
    for loss, as_written in zip(resolved["loss"], losses, strict=True):
        loss["inputs"] = copy.deepcopy(as_written["inputs"])
    out: dict[str, Any] = {}
    for key, value in resolved.items():
        if key == "nodes":
            out["blocks"] = blocks
            out["nodes"] = nodes
        elif key == "outputs":
            out["outputs"] = copy.deepcopy(written["outputs"])
        else:
            out[key] = value
    if not blocks:
        del out["blocks"]
    return out
