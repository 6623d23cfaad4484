"""Reading a spec file into plain data, with the line of every value, and ``--set`` overrides.

YAML is read with the safe loader only and duplicate keys are errors; ``.json`` files are read
by the strict JSON parser. The result is plain data plus a :class:`Source` that turns a path
inside the spec (``("nodes", 2, "inputs")``) into ``file:line: nodes[2].inputs``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphnet.errors import SpecError, excerpt, suggest
from graphnet.yamlio import SpecPath, format_path, parse_yaml


@dataclass
class Origin:
    """Where an expanded node was written: a path in some source (a block's node, or the
    spec's own node before expansion moved it) and the block instance it belongs to."""

    source: Source
    path: SpecPath
    instance: str | None = None  # `body.3`: the copy of a block instance, None outside blocks
    block: str | None = None  # the block the node was written in


@dataclass
class Repeat:
    """A repeated block instance: its first copy must give the shape it reads."""

    instance: str
    block: str
    first_input: str
    first_output: str
    where: str


@dataclass
class Instance:
    """A block instance of the spec's own nodes, as written: its block, how many copies, and the
    expanded node its name stands for."""

    name: str
    block: str
    repeat: int | None
    output: str


@dataclass
class Source:
    """Where each value of a spec came from: a line of the file or a ``--set`` override.

    After block expansion, ``origins`` maps each node's index to where it was written,
    ``written`` holds the spec as written (blocks unexpanded, overrides applied), ``blocks`` the
    blocks it defines or includes, and ``instances`` its own nodes that are block instances.
    """

    file: str
    lines: dict[SpecPath, int] = field(default_factory=dict)
    overrides: dict[SpecPath, str] = field(default_factory=dict)
    origins: dict[int, Origin] = field(default_factory=dict)
    repeats: list[Repeat] = field(default_factory=list)
    written: dict[str, Any] | None = None
    blocks: dict[str, Any] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict)
    settings: list[tuple[str, Any, str]] = field(default_factory=list)  # the overrides applied
    resolved: bool = False  # a spec graphnet wrote (a run's spec.yaml): expanded names allowed

    def where(self, path: SpecPath = (), line_of: SpecPath | None = None) -> str:
        """``file:line: spec.path`` (or ``--set KEY=VALUE: spec.path``) for ``path``.

        ``line_of`` is a deeper path whose line is more precise than ``path``'s own. A path
        inside an expanded node reads as where that node was written: ``file:7:
        blocks.residual.nodes[0].units (in body.3)``.
        """
        if len(path) >= 2 and path[0] == "nodes" and path[1] in self.origins:
            origin = self.origins[path[1]]
            deeper = None if line_of is None else (*origin.path, *line_of[2:])
            where = origin.source._where((*origin.path, *path[2:]), deeper)
            return where + (f" (in {origin.instance})" if origin.instance else "")
        return self._where(path, line_of)

    def _where(self, path: SpecPath = (), line_of: SpecPath | None = None) -> str:
        text = format_path(path)
        lookup = self._as_written(path if line_of is None else line_of)
        for end in range(len(lookup), -1, -1):
            if lookup[:end] in self.overrides:
                return f"--set {self.overrides[lookup[:end]]}" + (f": {text}" if text else "")
            if lookup[:end] in self.lines:
                line = self.lines[lookup[:end]]
                return f"{self.file}:{line}" + (f": {text}" if text else "")
            # a key the file lacks, made by an override (`--set trian.epochs=3` makes `trian`)
            made = [o for p, o in self.overrides.items() if p[:end] == lookup[:end]]
            if made:
                return f"--set {made[0]}" + (f": {text}" if text else "")
        return self.file + (f": {text}" if text else "")

    def _as_written(self, path: SpecPath) -> SpecPath:
        """``path`` as the file (or a ``--set``) writes it: ``loss[0].weight`` is ``loss.weight``
        where the spec gives its one loss as a mapping, not a list."""
        written: list[str | int] = []
        for part in path:
            here = tuple(written)
            if (
                part == 0
                and not isinstance(part, bool)
                and (*here, 0) not in self.lines
                and (here in self.lines or any(p[: len(here)] == here for p in self.overrides))
                and not any(p[: len(here) + 1] == (*here, 0) for p in self.overrides)
            ):
                continue  # a one-item list the spec wrote as the item itself
            written.append(part)
        return tuple(written)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str, file: str) -> tuple[Any, dict[SpecPath, int]]:
    """Strict JSON (no NaN, no trailing commas, no duplicate keys) and the line of every value."""
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in items]
        duplicates.extend(k for i, k in enumerate(keys) if k in keys[:i])
        return dict(items)

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        before = text[: error.pos].rstrip()
        if before.endswith(",") and text[error.pos : error.pos + 1] in ("}", "]"):
            comma = len(before) - 1  # json names the bracket after it; the comma is the mistake
            line, column = text.count("\n", 0, comma) + 1, comma - text.rfind("\n", 0, comma)
            raise SpecError(
                f"not valid JSON: trailing comma before '{text[error.pos]}'",
                f"{file}:{line}:{column}",
            ) from None
        raise SpecError(
            f"not valid JSON: {error.msg}", f"{file}:{error.lineno}:{error.colno}"
        ) from None
    except (ValueError, RecursionError) as error:
        raise SpecError(f"not valid JSON: {error}", file) from None
    try:  # JSON is YAML: the YAML reader gives the lines (and names a duplicate's line)
        _, lines = parse_yaml(text, file, construct=False)
    except SpecError as error:
        if duplicates and "duplicate key" in error.message:
            raise
        lines = {}
    if duplicates:
        raise SpecError(f"duplicate key {duplicates[0]!r}", file)
    return data, lines


def read(path: str | Path) -> tuple[Any, Source]:
    """Read a spec file into plain data and its :class:`Source`."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("spec file not found", file) from None
    except IsADirectoryError:
        raise SpecError("is a folder, not a spec file", file) from None
    except UnicodeDecodeError as error:
        raise SpecError(f"not UTF-8 text (byte {error.start})", file) from None
    except OSError as error:
        raise SpecError(f"cannot be read: {error.strerror}", file) from None
    if not text.strip():
        raise SpecError("the spec file is empty", file)
    data, lines = parse_json(text, file) if file.endswith(".json") else parse_yaml(text, file)
    if data is None:
        raise SpecError("the spec file is empty: it holds only comments or null", file)
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise SpecError(
            f"a spec must be a mapping of keys (data, inputs, nodes, loss, train), not {kind}",
            f"{file}:{lines.get((), 1)}",
        )
    return data, Source(file, lines)


# values an alias may copy in one --set value: a key's value, not a document
SET_VALUE_COPIES = 10_000


def _origin(item: str, limit: int = 80) -> str:
    """``KEY=VALUE`` as messages show it: a long value is cut, control characters escaped."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in item)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _parse_override(item: str) -> tuple[str, Any, str]:
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set takes KEY=VALUE, e.g. train.epochs=10; got {excerpt(item)}")
    origin = _origin(item)
    # read as a document of its own, with the limits that protect spec files (aliases, depth)
    try:
        value, _ = (
            parse_yaml(text, f"--set {origin}", max_copies=SET_VALUE_COPIES)
            if text.strip()
            else (None, {})
        )
    except SpecError as error:
        problem = error.message.removeprefix("not valid YAML: ").split(": ")[-1]
        raise SpecError(
            f"--set {origin}: the value is not a valid YAML scalar ({problem})"
        ) from None
    return key.strip(), value, origin


def _step(container: Any, part: str, origin: str, done: str) -> int | str:
    """The key or index that ``part`` of an override path names in ``container``."""
    if isinstance(container, dict):
        return part
    if isinstance(container, list):
        if part.lstrip("-").isdigit():
            index = int(part)
            if not -len(container) <= index < len(container):
                raise SpecError(f"--set {origin}: {done} has no item {index}")
            return index % len(container)
        names = [item.get("name") for item in container if isinstance(item, dict)]
        if part in names:
            return names.index(part)
        known = [str(n) for n in names if n is not None]
        raise SpecError(f"--set {origin}: {done} has no node named {part!r}{suggest(part, known)}")
    raise SpecError(f"--set {origin}: {done} is a value, not a section")


Setting = tuple[str, Any, str]  # an override: its key, its value, and how messages show it


def apply_overrides(
    data: dict[str, Any], overrides: Mapping[str, Any] | Iterable[str], source: Source
) -> None:
    """Apply ``--set`` overrides (``KEY=VALUE`` strings, or a ``{key: value}`` mapping) in place."""
    items = (
        [(k, v, _origin(f"{k}={excerpt(v)}")) for k, v in overrides.items()]
        if isinstance(overrides, Mapping)
        else [_parse_override(item) for item in overrides]
    )
    source.settings += items
    apply_settings(data, items, source)


def apply_settings(data: dict[str, Any], items: Iterable[Setting], source: Source) -> None:
    """Apply overrides read already (the spec's, again to a file it includes)."""
    for key, value, origin in items:
        parts = key.split(".")
        container: Any = data
        path: list[str | int] = []
        for i, part in enumerate(parts):
            done = format_path(path) or "the spec"
            step = _step(container, part, origin, done)
            path.append(step)
            if i == len(parts) - 1:
                container[step] = value
            else:
                if isinstance(container, dict) and container.get(step) is None:
                    container[step] = {}  # a section the file leaves out; validation names typos
                container = container[step]
        source.overrides[tuple(path)] = origin
