"""Pictures of a graph: a plain-text listing, Mermaid and Graphviz ``dot`` text, and images
rendered by Graphviz's ``dot`` program (``.svg``, ``.png``, ``.pdf``) when it is installed.

Every drawing shows each input with its shape, each node with its type and output shape, each
loss (with its weight when it is not 1) and which nodes are the outputs.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from graphnet.base import Shape
from graphnet.errors import DataError, GraphnetError
from graphnet.files import write_output
from graphnet.graph import Graph
from graphnet.instances import Item, collapse, collapsed, owners, parameter_counts

FORMATS = ("text", "mermaid", "dot")
TEXT_SUFFIXES = {
    ".txt": None,
    ".mmd": "mermaid",
    ".mermaid": "mermaid",
    ".dot": "dot",
    ".gv": "dot",
}
IMAGE_SUFFIXES = (".svg", ".png", ".pdf")
INSTALL_HINT = (
    "install Graphviz (Debian/Ubuntu: `sudo apt install graphviz`; Fedora: `sudo dnf install "
    "graphviz`; macOS: `brew install graphviz`; Windows: `winget install graphviz`; or "
    "https://graphviz.org/download/), or write the text instead: --output graph.dot or "
    "--output graph.mmd"
)


@dataclass
class _Box:
    """One thing to draw: an input, a node, a block instance or a loss, and what feeds it."""

    id: str
    name: str
    kind: str  # "input", "layer" or "loss"
    type: str
    shape: Shape | None
    sources: list[str]  # ids
    output: bool = False
    weight: float = 1.0
    params: int = 0
    group: _Group | None = None  # the block instance it is a node of, drawn with --expand


@dataclass
class _Group:
    """A block instance drawn around its nodes (``--expand``): a subgraph, a cluster."""

    id: str
    item: Item

    @property
    def label(self) -> str:
        count = _params(self.item.params)
        return f"{self.item.name}: {self.item.type}" + (f" ({count})" if count else "")


def _shape(shape: Shape | None) -> str:
    return "" if shape is None else "[" + ", ".join(map(str, shape)) + "]"


def _params(count: int) -> str:
    return "" if not count else f"{count:,} param{'s' if count != 1 else ''}"


def _boxes(graph: Graph, expand: bool = False) -> list[_Box]:
    """Inputs, then a box per item (a block instance is one box) or with ``expand`` per node
    (grouped by instance), then the losses."""
    counts = parameter_counts(graph)
    owner = owners(graph, expand)
    outputs = set(collapsed(graph.outputs, owner))
    items = collapse(graph, counts)
    ids = {name: f"i{k}" for k, name in enumerate(graph.inputs)}
    ids.update({node.name: f"n{k}" for k, node in enumerate(graph.nodes)})
    if not expand:
        ids.update({item.name: f"b{k}" for k, item in enumerate(items) if item.block})
    boxes = [
        _Box(ids[name], name, "input", "input", shape, [], name in outputs)
        for name, shape in graph.inputs.items()
    ]
    for k, item in enumerate(items):
        if item.block and not expand:
            sources = [ids[ref] for ref in item.inputs]
            box = _Box(ids[item.name], item.name, "layer", item.type, item.shape, sources)
            boxes.append(replace(box, output=item.name in outputs, params=item.params))
            continue
        group = _Group(f"s{k}", item) if item.block else None
        for node in item.nodes:
            sources = [ids[owner[ref]] for ref in node.inputs]
            box = _Box(ids[node.name], node.name, "layer", node.type, node.shape, sources)
            output = node.name in outputs
            boxes.append(replace(box, output=output, params=counts[node.name], group=group))
    boxes += [
        _Box(
            f"l{k}",
            "loss",
            "loss",
            loss.type,
            None,
            [ids[r] for r in collapsed(loss.inputs, owner)],
            False,
            loss.weight,
        )
        for k, loss in enumerate(graph.losses)
    ]
    return boxes


def _loss_label(box: _Box) -> str:
    return f"loss {box.type}" + (f" (weight {box.weight:g})" if box.weight != 1 else "")


# -- text ----------------------------------------------------------------------------------------


def to_text(graph: Graph, expand: bool = False) -> str:
    """A listing in data-flow order: inputs, nodes (``<- inputs``) with their parameter counts,
    losses and outputs. A block instance is one line; with ``expand`` its nodes follow it,
    indented."""
    boxes = _boxes(graph, expand)
    names = {b.id: b.name for b in boxes}

    def table(rows: list[list[str]]) -> list[str]:
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return [
            "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]

    inputs = [b for b in boxes if b.kind == "input"]
    losses = [b for b in boxes if b.kind == "loss"]
    lines = [f"graph {graph.spec.name}"]
    lines += ["inputs", *table([[b.name, _shape(b.shape)] for b in inputs])]
    rows: list[list[str]] = []
    shapes = {b.name: b.shape for b in boxes if b.kind != "loss"}
    for b in boxes:
        if b.kind != "layer":
            continue
        item = b.group.item if b.group is not None else None
        if item is not None and item.nodes[0].name == b.name:
            rows.append([item.name, item.type, _shape(item.shape), _params(item.params)])
            rows[-1].append("<- " + ", ".join(item.inputs))
            shapes[item.name] = item.shape
        sources = "<- " + ", ".join(names[s] for s in b.sources)
        indent = "  " if item is not None else ""
        rows.append([indent + b.name, b.type, _shape(b.shape), _params(b.params), sources])
    lines += ["nodes", *table(rows)]
    rows = [
        [_loss_label(b).removeprefix("loss "), "<- " + ", ".join(names[s] for s in b.sources)]
        for b in losses
    ]
    lines += ["losses", *table(rows)]
    outputs = collapsed(graph.outputs, owners(graph, expand))
    lines += ["outputs", *table([[name, _shape(shapes[name])] for name in outputs])]
    return "\n".join(lines) + "\n"


# -- mermaid -------------------------------------------------------------------------------------


def _mermaid_text(text: str) -> str:
    return html.escape(text, quote=False).replace('"', "#quot;")


def to_mermaid(graph: Graph, expand: bool = False) -> str:
    """A Mermaid flowchart (GitHub and GitLab render it inside a ```mermaid block); with
    ``expand``, each block instance is a subgraph of its nodes."""
    boxes = _boxes(graph, expand)
    lines = ["---", f"title: {json.dumps(str(graph.spec.name))}", "---", "flowchart TB"]
    group: _Group | None = None
    for b in boxes:
        if b.group is not group:
            if group is not None:
                lines.append("  end")
            if b.group is not None:
                lines.append(f'  subgraph {b.group.id} ["{_mermaid_text(b.group.label)}"]')
            group = b.group
        indent = "  " if group is not None else ""
        if b.kind == "loss":
            lines.append(f'  {b.id}{{{{"{_mermaid_text(_loss_label(b))}"}}}}')
            continue
        label = "<br/>".join(
            _mermaid_text(line)
            for line in (b.name, f"{b.type} {_shape(b.shape)}", _params(b.params))
            if line
        )
        if b.output:
            label += "<br/><i>output</i>"
        opening, closing = ("([", "])") if b.kind == "input" else ("[", "]")
        lines.append(f'  {indent}{b.id}{opening}"{label}"{closing}')
    if group is not None:
        lines.append("  end")
    for b in boxes:
        arrow = "-.->" if b.kind == "loss" else "-->"
        lines += [f"  {source} {arrow} {b.id}" for source in b.sources]
    lines += [
        "  classDef input fill:#dbeafe,stroke:#2563eb",
        "  classDef layer fill:#f8fafc,stroke:#475569",
        "  classDef output fill:#dcfce7,stroke:#16a34a,stroke-width:3px",
        "  classDef loss fill:#fee2e2,stroke:#dc2626",
    ]
    for kind in ("input", "layer", "output", "loss"):
        members = [b.id for b in boxes if ("output" if b.output else b.kind) == kind]
        if members:
            lines.append(f"  class {','.join(members)} {kind}")
    return "\n".join(lines) + "\n"


# -- dot -----------------------------------------------------------------------------------------


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: Graph, expand: bool = False) -> str:
    """A Graphviz digraph with HTML labels: name in bold, then type and shape, then the
    parameter count; with ``expand``, each block instance is a cluster of its nodes."""
    boxes = _boxes(graph, expand)
    lines = [
        f"digraph {_dot_string(str(graph.spec.name))} {{",
        f"  label={_dot_string(str(graph.spec.name))}; labelloc=t; fontname=Helvetica; fontsize=16;",
        "  rankdir=TB; nodesep=0.4; ranksep=0.45;",
        '  node [fontname=Helvetica, fontsize=12, shape=box, style="rounded,filled", '
        'fillcolor="#f8fafc", color="#475569", margin="0.15,0.06"];',
        '  edge [color="#475569", arrowsize=0.8];',
    ]
    group: _Group | None = None
    for b in boxes:
        if b.group is not group:
            if group is not None:
                lines.append("  }")
            if b.group is not None:
                lines.append(
                    f"  subgraph cluster_{b.group.id} {{ label={_dot_string(b.group.label)}; "
                    "labeljust=l; "
                    'style="rounded,dashed"; color="#94a3b8"; fontsize=12;'
                )
            group = b.group
        indent = "  " if group is not None else ""
        lines.append(indent + _dot_box(b))
    if group is not None:
        lines.append("  }")
    for b in boxes:
        style = ' [style=dashed, color="#dc2626"]' if b.kind == "loss" else ""
        lines += [f"  {source} -> {b.id}{style};" for source in b.sources]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_box(b: _Box) -> str:
    if b.kind == "loss":
        label = f"<b>{html.escape(_loss_label(b))}</b>"
        attrs = 'shape=octagon, fillcolor="#fee2e2", color="#dc2626"'
    else:
        label = (
            f"<b>{html.escape(b.name)}</b><br/>"
            f'<font point-size="10">{html.escape(b.type)} {_shape(b.shape)}</font>'
        )
        if b.params:
            label += f'<br/><font point-size="9">{_params(b.params)}</font>'
        if b.kind == "input":
            attrs = 'shape=ellipse, style=filled, fillcolor="#dbeafe", color="#2563eb"'
        else:
            attrs = ""
        if b.output:
            label += '<br/><font point-size="9"><i>output</i></font>'
            attrs = (attrs + ", " if attrs else "") + (
                'fillcolor="#dcfce7", color="#16a34a", penwidth=2'
            )
    return f"  {b.id} [label=<{label}>{', ' + attrs if attrs else ''}];"


# -- files ---------------------------------------------------------------------------------------


def choose_format(fmt: str | None, output: Path | None) -> str:
    """The drawing to make for ``--format`` and ``--output``: a text format, or an image
    suffix (``.png``) to render with Graphviz. Conflicts are errors."""
    if output is None:
        return fmt or "text"
    suffix = output.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        if fmt not in (None, "dot"):
            raise GraphnetError(
                f"--format {fmt} cannot be rendered to {suffix}: images are drawn by Graphviz "
                f"from the dot format (leave out --format, or write --output graph.{_suffix_of(fmt)})"
            )
        return suffix
    if suffix in TEXT_SUFFIXES:
        implied = TEXT_SUFFIXES[suffix]
        if implied is not None and fmt not in (None, implied):
            raise GraphnetError(f"--format {fmt} does not fit --output {output.name} ({implied})")
        return implied or fmt or "text"
    if fmt is not None:
        return fmt
    known = ", ".join([*TEXT_SUFFIXES, *IMAGE_SUFFIXES])
    raise GraphnetError(
        f"--output: cannot tell the format from {suffix or 'no extension'!r}; "
        f"use one of {known}, or give --format",
        str(output),
    )


def _suffix_of(fmt: str) -> str:
    return {"mermaid": "mmd", "dot": "dot"}.get(fmt, "txt")


def text(graph: Graph, fmt: str, expand: bool = False) -> str:
    """The graph as ``text``, ``mermaid`` or ``dot`` (``expand``: every node of each block
    instance)."""
    return {"text": to_text, "mermaid": to_mermaid, "dot": to_dot}[fmt](graph, expand)


def render(dot_source: str, output: Path) -> None:
    """Render dot text to ``output`` (its suffix names the image format) with Graphviz."""
    program = shutil.which("dot")
    if program is None:
        raise DataError(
            f"drawing a {output.suffix} needs Graphviz's `dot` program, which is not on PATH: "
            + INSTALL_HINT,
            str(output),
        )
    try:
        result = subprocess.run(
            [program, f"-T{output.suffix.lower().lstrip('.')}"],
            input=dot_source.encode(),
            capture_output=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise DataError(f"Graphviz's dot failed: {error}", str(output)) from None
    if result.returncode != 0 or not result.stdout:
        message = (
            result.stderr.decode(errors="replace").strip() or f"exit status {result.returncode}"
        )
        raise DataError(f"Graphviz's dot failed: {message}", str(output))
    _write(output, result.stdout)


def _write(output: Path, data: bytes) -> None:
    write_output(output, data, "drawing")


def draw(
    graph: Graph, fmt: str | None = None, output: Path | None = None, expand: bool = False
) -> str | None:
    """Draw ``graph``: return the text when ``output`` is None, else write (or render) it."""
    chosen = choose_format(fmt, output)
    if output is None:
        return text(graph, chosen, expand)
    if chosen in IMAGE_SUFFIXES:
        render(to_dot(graph, expand), output)
    else:
        _write(output, text(graph, chosen, expand).encode())
    return None
