"""All of graphnet's YAML: the safe loader, reading a document with the line of every value,
writing a resolved spec, and marking its overridden values with comments.

Only the safe loader is used: a YAML document never constructs Python objects. Values are
addressed by paths like ``("nodes", 2, "inputs")``, printed as ``nodes[2].inputs``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from graphnet.errors import SpecError

SpecPath = tuple[str | int, ...]

# libyaml's safe loader when PyYAML was built with it (5x faster on big specs), else PyYAML's own
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SafeLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """Safe YAML that also reads ``1e-4`` and ``1E6`` as numbers (YAML 1.2), not as strings."""


SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def format_path(path: Iterable[str | int]) -> str:
    """``("nodes", 2, "inputs")`` -> ``nodes[2].inputs``."""
    text = ""
    for part in path:
        index = isinstance(part, int) and not isinstance(part, bool)  # a key `true:` is no index
        text += f"[{part}]" if index else (f".{part}" if text else str(part))
    return text


# values an alias (`*name`) may copy in all: a few lines of nested aliases can stand for billions
MAX_ALIAS_COPIES = 1_000_000


def _walk_yaml(
    loader: yaml.SafeLoader, root: yaml.Node, file: str, max_copies: int = MAX_ALIAS_COPIES
) -> dict[SpecPath, int]:
    """Record the line of every value under ``root``; reject duplicate keys and aliases that
    contain themselves or expand to more than ``MAX_ALIAS_COPIES`` values."""
    lines: dict[SpecPath, int] = {}
    stack: list[tuple[yaml.Node, SpecPath, tuple[yaml.Node, ...]]] = [(root, (), ())]
    seen_nodes: set[int] = set()
    copies = 0
    while stack:
        node, path, ancestors = stack.pop()
        lines[path] = node.start_mark.line + 1
        if id(node) in seen_nodes:
            copies += 1
            if copies > max_copies:
                raise SpecError(
                    f"aliases (*name) expand the document to more than {max_copies:,} values",
                    file,
                )
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            if any(node is a for a in ancestors):
                where = f"{file}:{lines[path]}: {format_path(path)}" if path else file
                raise SpecError("an alias (*name) inside the value it names: it never ends", where)
            ancestors = (*ancestors, node)
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = loader.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    hash(key)
                except TypeError:
                    raise SpecError("a key must be a plain value", f"{file}:{line}") from None
                if key in seen:
                    where = f"{file}:{line}: {format_path((*path, key))}"
                    raise SpecError(
                        f"duplicate key {key!r} (first given on line {seen[key]})", where
                    )
                seen[key] = line
                stack.append((value_node, (*path, key), ancestors))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, i), ancestors) for i, item in enumerate(node.value))
    return lines


def _yaml_error(error: yaml.YAMLError, file: str, text: str = "") -> SpecError:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    message = f"{context}: {problem}" if context and "constructor" not in problem else problem
    if mark is None:
        return SpecError(f"not valid YAML: {message}", file)
    lines = text.splitlines()
    if mark.line < len(lines) and "\t" in lines[mark.line][: mark.column + 1]:
        message += " (a tab: YAML indents with spaces, never tabs)"
    return SpecError(f"not valid YAML: {message}", f"{file}:{mark.line + 1}:{mark.column + 1}")


def parse_yaml(
    text: str, file: str, construct: bool = True, max_copies: int = MAX_ALIAS_COPIES
) -> tuple[Any, dict[SpecPath, int]]:
    """Safe-load one YAML document and the line of every value (only the lines if not construct)."""
    loader = SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {}
        lines = _walk_yaml(loader, root, file, max_copies)
        return (loader.construct_document(root) if construct else None), lines
    except yaml.YAMLError as error:
        raise _yaml_error(error, file, text) from None
    except RecursionError:
        raise SpecError("the document is nested too deeply", file) from None
    finally:
        loader.dispose()


def read_plain(path: Path, what: str) -> dict[str, Any]:
    """A YAML mapping written by graphnet itself (a run's ``spec.yaml``), without line numbers."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=SafeLoader)
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as error:
        raise SpecError(f"{what} cannot be read: {error}", str(path)) from None
    if not isinstance(data, dict):
        raise SpecError(f"{what} is not a mapping", str(path))
    return data


class _SpecDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Safe YAML with short lists of plain values on one line: ``inputs: [x]``."""


def _represent_list(dumper: Any, data: list[Any]) -> yaml.Node:
    flat = all(isinstance(item, str | int | float | bool) or item is None for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_SpecDumper.add_representer(list, _represent_list)


def spec_text(spec: Mapping[str, Any]) -> str:
    """A resolved spec as YAML, the way ``spec.yaml`` holds it."""
    return yaml.dump(dict(spec), Dumper=_SpecDumper, sort_keys=False, allow_unicode=True)


def comment_lines(text: str) -> dict[SpecPath, int]:
    """For every value of a YAML document, the line (from 0) where a comment about it goes:
    the key's line for a block collection, the last line of a scalar or a flow collection."""
    root = yaml.compose(text, Loader=SafeLoader)
    lines: dict[SpecPath, int] = {}
    if root is None:
        return lines
    stack: list[tuple[yaml.Node, SpecPath, int]] = [(root, (), root.start_mark.line)]
    while stack:
        node, path, key_line = stack.pop()
        block = isinstance(node, yaml.CollectionNode) and not node.flow_style
        lines[path] = key_line if block else node.end_mark.line
        if isinstance(node, yaml.MappingNode):
            stack += [(v, (*path, k.value), k.start_mark.line) for k, v in node.value]
        elif isinstance(node, yaml.SequenceNode):
            stack += [(item, (*path, i), item.start_mark.line) for i, item in enumerate(node.value)]
    return lines


def resolved_yaml(spec: Mapping[str, Any], overrides: Mapping[SpecPath, str]) -> str:
    """The resolved spec as YAML, with a ``# from --set KEY=VALUE`` comment on each override."""
    text = spec_text(spec)
    lines = text.splitlines()
    places = comment_lines(text)
    notes: dict[int, list[str]] = {}
    unplaced: list[str] = []
    for path, origin in overrides.items():
        found = next((path[:end] for end in range(len(path), 0, -1) if path[:end] in places), None)
        if found is None:
            unplaced.append(origin)
        else:
            notes.setdefault(places[found], []).append(f"--set {origin}")
    for line, origins in notes.items():
        lines[line] += "  # from " + ", ".join(origins)
    lines += [f"# --set {origin}: not shown, it sets the default" for origin in unplaced]
    return "\n".join(lines) + "\n"
