"""The resolved spec as YAML (defaults filled in, ``--set`` applied), each overridden value
marked with a comment saying where it came from: ``epochs: 3  # from --set train.epochs=3``.

The YAML is what a run saves as ``spec.yaml``, plus the comments.
"""

from __future__ import annotations

import yaml

from graphnet.runfolder import spec_text
from graphnet.source import SafeLoader, SpecPath
from graphnet.spec import Spec


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


def resolved_yaml(spec: Spec) -> str:
    """The resolved spec as YAML, with a ``# from --set KEY=VALUE`` comment on each override."""
    text = spec_text(spec.to_dict())
    lines = text.splitlines()
    places = comment_lines(text)
    notes: dict[int, list[str]] = {}
    unplaced: list[str] = []
    for path, origin in spec.source.overrides.items():
        found = next((path[:end] for end in range(len(path), 0, -1) if path[:end] in places), None)
        if found is None:
            unplaced.append(origin)
        else:
            notes.setdefault(places[found], []).append(f"--set {origin}")
    for line, origins in notes.items():
        lines[line] += "  # from " + ", ".join(origins)
    lines += [f"# --set {origin}: not shown, it sets the default" for origin in unplaced]
    return "\n".join(lines) + "\n"
