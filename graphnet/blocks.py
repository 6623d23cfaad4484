"""Reusable blocks: ``blocks:``, ``include:`` and plugin blocks, expanded into plain nodes.

Expansion works on plain spec data, after ``--set`` overrides and before validation: a node
whose ``type`` is a block becomes the block's nodes, named ``<node>.<inner>`` (or
``<node>.<i>.<inner>`` with ``repeat``), and every reference to the node reads its (last
copy's) output. The :class:`~graphnet.specfile.Source` learns where each expanded node was
written, so errors name the block's line and the instance.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphnet import specfile
from graphnet.errors import GraphnetWarning, SpecError, excerpt, suggest
from graphnet.specfile import Instance, Origin, Repeat, Setting, Source
from graphnet.yamlio import SpecPath, format_path

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")
OPTION = re.compile(r"\$([A-Za-z_][A-Za-z0-9_\-]*)\Z")
MAX_NODES = 100_000  # nodes an expansion may make: a few lines of nested repeats can be billions
BLOCK_KEYS = ("inputs", "options", "nodes", "output")
INSTANCE_KEYS = ("name", "type", "inputs", "repeat")


@dataclass
class Block:
    """A block as written: its body, and where (a source and a path in it)."""

    name: str
    body: dict[str, Any]
    source: Source
    path: SpecPath
    package: str | None = None  # the plugin package that publishes it (graphnet_blocks)

    def where(self, *rest: str | int) -> str:
        return self.source.where((*self.path, *rest))


def _check_name(name: Any, what: str, where: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise SpecError(
            f"{excerpt(name)} is not a valid {what} name: a name starts with a letter or '_' "
            "and holds only letters, digits, '_' and '-' (the dot is reserved for the nodes "
            "of block instances)",
            where,
        )
    return name


def _blocks_of(data: Mapping[str, Any], source: Source, into: dict[str, Block]) -> None:
    """The ``blocks:`` of one document, added to ``into`` (a name defined twice is an error)."""
    written = data.get("blocks")
    if written is None:
        return
    if not isinstance(written, dict):
        raise SpecError(
            "blocks: must be a mapping of block names to blocks", source.where(("blocks",))
        )
    for name, body in written.items():
        _check_name(name, "block", source.where(("blocks",), line_of=("blocks", name)))
        if name in into:
            raise SpecError(
                f"block {name!r} is defined twice (first at {into[name].where()})",
                source.where(("blocks", name)),
            )
        into[name] = Block(name, body, source, ("blocks", name))


def _include(
    data: Mapping[str, Any],
    source: Source,
    into: dict[str, Block],
    chain: tuple[Path, ...],
    done: set[Path],
    pending: dict[str, list[Setting]],
) -> None:
    """The blocks of every file ``include:`` names (relative to the including file), recursively;
    a file included twice (``a`` and ``b`` both include ``common``) is read once. ``pending``
    overrides (``--set blocks.<name>...``) are applied to the file that defines the block."""
    files = data.get("include")
    if files is None:
        return
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list):
        raise SpecError("include: must be a list of files", source.where(("include",)))
    here = Path(source.file).parent
    for i, name in enumerate(files):
        where = source.where(("include", i))
        if not isinstance(name, str) or not name.strip() or not name.isprintable():
            raise SpecError(f"include: {excerpt(name)} is not a file name", where)
        path = here / name
        resolved = path.resolve()
        if resolved in chain:
            cycle = " -> ".join(str(p.name) for p in (*chain[chain.index(resolved) :], resolved))
            raise SpecError(f"include cycle: {cycle}", where)
        if not path.is_file():
            raise SpecError(f"include file not found: {path}", where)
        if resolved in done:
            continue
        done.add(resolved)
        included, included_source = specfile.read(path)
        unknown = [k for k in included if k not in ("blocks", "include")]
        if unknown:
            raise SpecError(
                f"an included file holds only blocks: and include:, not {unknown[0]!r}",
                included_source.where((unknown[0],)),
            )
        _include(included, included_source, into, (*chain, resolved), done, pending)
        defined = included.get("blocks")
        for block in [b for b in pending if isinstance(defined, dict) and b in defined]:
            specfile.apply_settings(included, pending.pop(block), included_source)
        _blocks_of(included, included_source, into)


def _made_by_set(data: dict[str, Any], source: Source) -> dict[str, tuple[Any, list[Setting]]]:
    """The blocks that only ``--set`` wrote into the spec (``--set
    blocks.residual.options.units=64`` where an included file defines ``residual``): taken out
    of ``data``, each with the overrides that made it, to be applied where the block is."""
    written = data.get("blocks")
    if not isinstance(written, dict):
        return {}
    made = {}
    for name in [n for n in written if ("blocks", n) not in source.lines]:
        prefix = f"blocks.{name}"
        items = [s for s in source.settings if s[0] == prefix or s[0].startswith(f"{prefix}.")]
        if items:
            made[name] = (written.pop(name), items)
    if not written and ("blocks",) not in source.lines:
        del data["blocks"]
    return made


def _plugin_blocks(registry: Any) -> dict[str, Block]:
    out: dict[str, Block] = {}
    for name, (body, package) in registry.blocks().items():
        source = Source(f"plugin {package}")
        out[name] = Block(name, copy.deepcopy(body), source, ("blocks", name), package)
    return out


def _check_block(block: Block, blocks: Mapping[str, Block], layer_types: set[str]) -> None:
    body = block.body
    if block.name.lower() in layer_types:
        raise SpecError(
            f"block {block.name!r} has the name of a layer type; name it otherwise", block.where()
        )
    if not isinstance(body, dict):
        raise SpecError("a block is a mapping of inputs, options, nodes and output", block.where())
    for key in body:
        if key not in BLOCK_KEYS:
            raise SpecError(
                f"unknown key {key!r} in a block{suggest(str(key), BLOCK_KEYS)}", block.where(key)
            )
    for key in ("inputs", "nodes", "output"):
        if key not in body:
            raise SpecError(f"block {block.name!r} has no {key!r}", block.where())
    inputs = body["inputs"] = (
        [body["inputs"]] if isinstance(body["inputs"], str) else body["inputs"]
    )
    if not isinstance(inputs, list) or not inputs:
        raise SpecError("a block's inputs: a list of one or more names", block.where("inputs"))
    for i, name in enumerate(inputs):
        _check_name(name, "input", block.where("inputs", i))
    options = body.setdefault("options", {})
    if options is None:
        options = body["options"] = {}
    if not isinstance(options, dict):
        raise SpecError(
            "a block's options: a mapping of option names to defaults", block.where("options")
        )
    for name in options:
        _check_name(name, "option", block.where("options"))
    nodes = body["nodes"]
    if not isinstance(nodes, list) or not nodes:
        raise SpecError("a block's nodes: a list of one or more nodes", block.where("nodes"))
    names: set[str] = set(inputs)
    for j, node in enumerate(nodes):
        if not isinstance(node, dict):
            raise SpecError(
                "a node is a mapping (name, type, inputs, options)", block.where("nodes", j)
            )
        for key in ("name", "type", "inputs"):
            if key not in node:
                raise SpecError(f"missing required key {key!r}", block.where("nodes", j))
        name = _check_name(node["name"], "node", block.where("nodes", j, "name"))
        if name in names:
            raise SpecError(
                f"duplicate name {name!r} in block {block.name!r}", block.where("nodes", j, "name")
            )
        names.add(name)
        _options_used(node, options, block, ("nodes", j))
    output = body["output"]
    if not isinstance(output, str) or output not in names - set(inputs):
        raise SpecError(
            f"block {block.name!r} has no node {excerpt(output)}"
            f"{suggest(str(output), names - set(inputs))}",
            block.where("output"),
        )


def _options_used(value: Any, options: Mapping[str, Any], block: Block, path: SpecPath) -> None:
    """Every ``$option`` under ``value`` is one of the block's options."""
    if isinstance(value, str) and (match := OPTION.match(value)):
        if match.group(1) not in options:
            known = ", ".join(options) or "none"
            raise SpecError(
                f"unknown option {value!r} of block {block.name!r}{suggest(match.group(1), options)}; "
                f"its options: {known}",
                block.where(*path),
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _options_used(item, options, block, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _options_used(item, options, block, (*path, i))


def _no_options(value: Any, source: Source, path: SpecPath) -> None:
    """A ``$option`` outside blocks: substituted nowhere, so an error."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str) and OPTION.match(item):
            raise SpecError(
                f"{item!r} outside a block: options ($name) are substituted only in the nodes "
                "of blocks:",
                source.where(where),
            )
        if isinstance(item, dict):
            stack.extend((v, (*where, k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, (*where, i)) for i, v in enumerate(item))


def _check_cycles(blocks: Mapping[str, Block]) -> None:
    """Blocks that use themselves, directly or through others, never end."""
    state: dict[str, int] = {}  # 1: being visited, 2: done
    for start in blocks:
        if state.get(start):
            continue
        stack: list[tuple[str, list[str]]] = [(start, _uses(blocks[start], blocks))]
        trail = [start]
        state[start] = 1
        while stack:
            name, todo = stack[-1]
            if not todo:
                state[name] = 2
                stack.pop()
                trail.pop()
                continue
            used = todo.pop()
            if state.get(used) == 1:
                cycle = " -> ".join([*trail[trail.index(used) :], used])
                raise SpecError(f"blocks use each other in a cycle: {cycle}", blocks[used].where())
            if not state.get(used):
                state[used] = 1
                trail.append(used)
                stack.append((used, _uses(blocks[used], blocks)))


def _uses(block: Block, blocks: Mapping[str, Block]) -> list[str]:
    return [
        n["type"]
        for n in block.body["nodes"]
        if isinstance(n.get("type"), str) and n["type"] in blocks
    ]


def _repeat(node: Mapping[str, Any], where: str) -> int | None:
    if "repeat" not in node:
        return None
    repeat = node["repeat"]
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise SpecError(
            f"repeat: a whole number of copies, at least 1; got {excerpt(repeat)}", where
        )
    return int(repeat)


def _count(
    block: Block, options: Mapping[str, Any], blocks: Mapping[str, Block], memo: dict[str, int]
) -> int:
    """How many nodes one copy of ``block`` with ``options`` expands to (blocks are acyclic by
    now); stops counting past ``MAX_NODES``."""
    key = f"{block.name}{options!r}"
    if key not in memo:
        total = 0
        for j, node in enumerate(block.body["nodes"]):
            node = _substitute(node, options)
            inner = _block_of(node, blocks)
            copies = _repeat(node, block.where("nodes", j, "repeat")) or 1
            if inner is not None:
                own = {k: v for k, v in node.items() if k not in INSTANCE_KEYS}
                total += copies * _count(inner, {**inner.body["options"], **own}, blocks, memo)
            else:
                total += 1
            if total > MAX_NODES:
                break
        memo[key] = total
    return memo[key]


def _substitute(value: Any, options: Mapping[str, Any]) -> Any:
    if isinstance(value, str) and (match := OPTION.match(value)):
        return copy.deepcopy(options[match.group(1)])
    if isinstance(value, dict):
        return {k: _substitute(v, options) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, options) for v in value]
    return value


class _Expander:
    def __init__(self, blocks: Mapping[str, Block], source: Source) -> None:
        self.blocks = blocks
        self.source = source
        self.nodes: list[dict[str, Any]] = []
        self.origins: dict[int, Origin] = {}

    def instance(
        self, node: dict[str, Any], name: str, block: Block, where: str, written: Origin
    ) -> str:
        """Expand one instance named ``name``; its output's expanded name."""
        body = block.body
        options = dict(body["options"])
        for key, value in node.items():
            if key in INSTANCE_KEYS:
                continue
            if key not in options:
                known = ", ".join(options) or "none"
                raise SpecError(
                    f"unknown option {key!r} for block {block.name!r}{suggest(str(key), options)}; "
                    f"its options: {known}",
                    f"{where}.{key}" if written.instance is None else where,
                )
            options[key] = value
        inputs = node["inputs"]
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or len(inputs) != len(body["inputs"]):
            raise SpecError(
                f"block {block.name!r} reads {len(body['inputs'])} input(s) "
                f"({', '.join(body['inputs'])}), got {excerpt(inputs)}",
                where,
            )
        repeat = _repeat(node, where)
        current = list(inputs)
        for i in range(1, (repeat or 1) + 1):
            prefix = name if repeat is None else f"{name}.{i}"
            local = dict(zip(body["inputs"], current, strict=True))
            for j, inner in enumerate(body["nodes"]):
                inner_name = f"{prefix}.{inner['name']}"
                expanded = _substitute(inner, options)
                refs = expanded["inputs"]
                refs = [refs] if isinstance(refs, str) else refs
                if isinstance(refs, list):
                    expanded["inputs"] = [
                        local.get(r, r) if isinstance(r, str) else r for r in refs
                    ]
                origin = Origin(block.source, (*block.path, "nodes", j), prefix, block.name)
                inner_block = (
                    self.blocks.get(expanded["type"]) if isinstance(expanded["type"], str) else None
                )
                if inner_block is not None:
                    inner_where = block.where("nodes", j) + f" (in {prefix})"
                    local[inner["name"]] = self.instance(
                        expanded, inner_name, inner_block, inner_where, origin
                    )
                elif "repeat" in expanded:
                    where = block.where("nodes", j, "repeat") + f" (in {prefix})"
                    raise _repeat_on_layer(expanded, where)
                else:
                    expanded["name"] = inner_name
                    self.origins[len(self.nodes)] = origin
                    self.nodes.append(expanded)
                    local[inner["name"]] = inner_name
            output = local[body["output"]]
            if repeat is not None and i == 1:
                self.source.repeats.append(Repeat(name, block.name, current[0], output, where))
            current = [output, *current[1:]]
        return current[0]


def expand(data: dict[str, Any], source: Source, registry: Any, *, resolved: bool = False) -> None:
    """Expand the blocks of spec ``data`` in place (``blocks:`` and ``include:`` removed).

    ``resolved`` is a spec graphnet wrote itself (a run's ``spec.yaml``): its node names may
    hold the dots of expanded nodes.
    """
    source.resolved = resolved
    blocks = _plugin_blocks(registry)
    own: dict[str, Block] = {}
    made = _made_by_set(data, source)
    pending = {name: items for name, (_, items) in made.items()}
    _include(data, source, own, (Path(source.file).resolve(),), set(), pending)
    for name, (stub, items) in made.items():
        if name not in pending:  # the included file's source names these values now
            for path in [p for p in source.overrides if p[:2] == ("blocks", name)]:
                del source.overrides[path]
        elif name in blocks:
            raise SpecError(
                f"--set {items[0][2]}: block {name!r} is published by the plugin package "
                f"{blocks[name].package!r} and cannot be changed; set its options on an "
                f"instance instead (--set nodes.<instance>.<option>=...)"
            )
        elif not (isinstance(stub, dict) and "nodes" in stub):
            known = [*own, *blocks, *data.get("blocks", {})]
            raise SpecError(f"--set {items[0][2]}: no block {name!r}{suggest(name, known)}")
        else:  # a whole block written by --set: the spec's own
            data.setdefault("blocks", {})[name] = stub
    _blocks_of(data, source, own)
    for name in [name for name in own if name in blocks]:
        warnings.warn(
            f"{own[name].where()}: block {name!r} is also published by the plugin package "
            f"{blocks[name].package!r}; the spec's own is used (rename it to use the package's)",
            GraphnetWarning,
            stacklevel=2,
        )
    blocks.update(own)
    nodes = data.get("nodes")
    for key, value in data.items():
        if key != "blocks":
            _no_options(value, source, (key,))
    uses = isinstance(nodes, list) and any(
        isinstance(n, dict) and isinstance(n.get("type"), str) and n["type"] in blocks
        for n in nodes
    )
    if not isinstance(nodes, list) or (not own and not uses):
        data.pop("blocks", None)
        data.pop("include", None)
        return
    source.written = copy.deepcopy(data)
    layer_types = set(registry.entries("layer"))
    for defined in blocks.values():
        _check_block(defined, blocks, layer_types)
    _check_cycles(blocks)
    source.blocks = {name: copy.deepcopy(block.body) for name, block in own.items()}
    data.pop("blocks", None)
    data.pop("include", None)
    memo: dict[str, int] = {}
    total = 0
    for i, node in enumerate(nodes):
        block = _block_of(node, blocks)
        if block is not None:
            own = {k: v for k, v in node.items() if k not in INSTANCE_KEYS}
            copies = _repeat(node, source.where(("nodes", i, "repeat"))) or 1
            total += copies * _count(block, {**block.body["options"], **own}, blocks, memo)
        else:
            total += 1
        if total > MAX_NODES:
            raise SpecError(
                f"the blocks expand to more than {MAX_NODES:,} nodes; use fewer or smaller repeats",
                source.where(("nodes", i)),
            )
    expander = _Expander(blocks, source)
    outputs: dict[str, str] = {}
    for i, node in enumerate(nodes):
        written = Origin(source, ("nodes", i))
        block = _block_of(node, blocks)
        if block is None:
            if isinstance(node, dict) and "name" in node:
                _check_name(node["name"], "node", source.where(("nodes", i, "name")))
                if "repeat" in node:
                    raise _repeat_on_layer(node, source.where(("nodes", i, "repeat")))
            expander.origins[len(expander.nodes)] = written
            expander.nodes.append(node)
            continue
        name = _check_name(node.get("name"), "node", source.where(("nodes", i, "name")))
        if "inputs" not in node:
            raise SpecError("missing required key 'inputs'", source.where(("nodes", i)))
        where = source.where(("nodes", i))
        outputs[name] = expander.instance(node, name, block, where, written)
        source.instances[name] = Instance(name, block.name, _repeat(node, where), outputs[name])
    for node in expander.nodes:
        if isinstance(node, dict) and "inputs" in node:
            node["inputs"] = _renamed(node.get("inputs"), outputs)
    for repeat in source.repeats:  # a repeated instance may read another instance
        repeat.first_input = _renamed(repeat.first_input, outputs)
    data["nodes"] = expander.nodes
    loss = data.get("loss")
    for item in loss if isinstance(loss, list) else [loss]:
        if isinstance(item, dict) and "inputs" in item:
            item["inputs"] = _renamed(item.get("inputs"), outputs)
    if "outputs" in data:
        data["outputs"] = _renamed(data["outputs"], outputs)
    source.origins = expander.origins


def _repeat_on_layer(node: Mapping[str, Any], where: str) -> SpecError:
    kind = excerpt(node.get("type"))
    return SpecError(f"repeat is for block instances; {kind} is a layer type", where)


def _block_of(node: Any, blocks: Mapping[str, Block]) -> Block | None:
    """The block a node of the spec is an instance of, if its type names one."""
    kind = node.get("type") if isinstance(node, dict) else None
    return blocks.get(kind) if isinstance(kind, str) else None


def _renamed(refs: Any, outputs: Mapping[str, str]) -> Any:
    if isinstance(refs, str):
        return outputs.get(refs, refs)
    if isinstance(refs, list):
        return [outputs.get(r, r) if isinstance(r, str) else r for r in refs]
    return refs


def instance_of(name: str) -> str:
    """The block instance an expanded node belongs to (``body`` for ``body.3.fc1``)."""
    return name.split(".", 1)[0]


__all__ = ["MAX_NODES", "expand", "format_path", "instance_of"]
