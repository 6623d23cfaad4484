"""`graphnet graph SPEC [--format text|mermaid|dot] [--output FILE]`: the graph as text or a picture.

Every format shows every input with its shape, every node with its type and output shape, the
losses (with a weight that is not 1) and the outputs. Images are drawn by Graphviz's `dot` when
it is installed; when it is not, the message says how to install it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SHIPPED_SPECS, invoke

import graphnet
from graphnet.api import load_graph
from graphnet.drawing import to_dot, to_mermaid, to_text
from graphnet.instances import collapse, collapsed, owners, parameter_counts

HAS_DOT = shutil.which("dot") is not None

WEIGHTED = """\
name: two-heads
inputs:
  x: {shape: [4]}
  y: {shape: [1]}
  c: {shape: [1]}
nodes:
  - {name: trunk, type: Dense, inputs: x, units: 8}
  - {name: reg, type: dense, inputs: [trunk], units: 1}
  - {name: cls, type: dense, inputs: [trunk], units: 3}
  - {name: probs, type: softmax, inputs: [cls]}
loss:
  - {type: mse, inputs: [reg, y]}
  - {type: cross_entropy, inputs: [cls, c], weight: 0.5}
outputs: [reg, probs]
"""


def shape(values: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, values)) + "]"


@pytest.fixture
def weighted(tmp_path: Path) -> Path:
    path = tmp_path / "weighted.yaml"
    path.write_text(WEIGHTED, encoding="utf-8")
    return path


@pytest.mark.parametrize("expand", [False, True], ids=["", "expand"])
@pytest.mark.parametrize("fmt", ["text", "mermaid", "dot"])
@pytest.mark.parametrize("spec", SHIPPED_SPECS, ids=[p.stem for p in SHIPPED_SPECS])
def test_every_format_shows_every_input_node_loss_and_output(spec, fmt, expand):
    """Each node's (or block instance's) name, type and shape, each input's shape, each loss
    type, and the outputs; `--expand` shows every node of every block instance."""
    result = invoke("graph", spec, "--format", fmt, *(["--expand"] if expand else []))
    assert result.exit_code == 0, result.output
    graph = load_graph(spec)
    text = result.output
    input_line = {
        "text": r"^  {name}\s+{shape}$",
        "mermaid": r'"{name}<br/>input {shape}',
        "dot": r'<b>{name}</b><br/><font point-size="10">input {shape}',
    }[fmt]
    for name, dims in graph.inputs.items():
        assert re.search(input_line.format(name=name, shape=re.escape(shape(dims))), text, re.M)
    shown = graph.nodes if expand else collapse(graph, parameter_counts(graph))
    for node in shown:
        kind = re.escape(node.type)
        pattern = rf"\b{re.escape(node.name)}\b.*?\b{kind}\W*{re.escape(shape(node.shape))}"
        assert re.search(pattern, text), node.name
    for loss in graph.losses:
        assert re.search(rf"\b{loss.type}\b", text)
    for name in collapsed(graph.outputs, owners(graph, expand)):
        marked = rf"^  {name}\s+\[" if fmt == "text" else rf"\b{name}\b.*<i>output</i>"
        assert re.search(marked, text.split("outputs\n")[-1], re.M), name


def test_the_text_listing_of_the_seed_spec():
    """The plain-text form reads top to bottom: inputs, nodes with their parameter counts and
    inputs, losses, outputs."""
    result = invoke("graph", ROOT / "specs" / "seed.yaml")
    assert result.exit_code == 0
    assert result.output == (
        "graph seed-product\n"
        "inputs\n"
        "  x  [2]\n"
        "  y  [1]\n"
        "nodes\n"
        "  hidden  dense  [5]  15 params  <- x\n"
        "  act     relu   [5]             <- hidden\n"
        "  out     dense  [1]  6 params   <- act\n"
        "losses\n"
        "  mse  <- out, y\n"
        "outputs\n"
        "  out  [1]\n"
    )


def test_edges_are_every_nodes_and_losss_inputs(weighted):
    """Mermaid and dot have one edge per input of each node and loss, and mark the outputs."""
    graph = load_graph(weighted)
    edges = sum(len(n.inputs) for n in graph.nodes) + sum(len(x.inputs) for x in graph.losses)
    mermaid, dot = to_mermaid(graph), to_dot(graph)
    assert len(re.findall(r"^  \w+ -(?:->|\.->) \w+$", mermaid, re.M)) == edges
    assert len(re.findall(r"^  \w+ -> \w+", dot, re.M)) == edges
    assert re.search(r"^  class \S*n1\S* output$", mermaid, re.M)  # reg
    assert dot.count("<i>output</i>") == 2


def test_a_loss_weight_other_than_1_is_shown(weighted):
    """`cross_entropy (weight 0.5)`; the weight of 1 is not written."""
    graph = load_graph(weighted)
    for text in (to_text(graph), to_mermaid(graph), to_dot(graph)):
        assert "cross_entropy (weight 0.5)" in text
        assert "mse (weight" not in text


def test_set_changes_the_drawing():
    """`--set` is applied before drawing, as for validate and summary."""
    result = invoke("graph", ROOT / "specs" / "seed.yaml", "--set", "nodes.hidden.units=8")
    assert "hidden  dense  [8]  24 params" in result.output


@pytest.mark.parametrize(
    ("suffix", "fmt"), [(".dot", "dot"), (".mmd", "mermaid"), (".txt", "text")]
)
def test_output_writes_the_text_its_extension_names(tmp_path, suffix, fmt):
    """`--output x.dot/.mmd/.txt` writes what `--format` prints."""
    spec = ROOT / "specs" / "residual.yaml"
    result = invoke("graph", spec, "--output", tmp_path / f"g{suffix}")
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / f'g{suffix}'}" in result.output
    printed = invoke("graph", spec, "--format", fmt).output
    assert (tmp_path / f"g{suffix}").read_text(encoding="utf-8") == printed


@pytest.mark.parametrize(
    ("args", "expected_error"),
    [
        (
            ["--format", "mermaid", "--output", "g.dot"],
            "--format mermaid does not fit --output g.dot",
        ),
        (["--format", "text", "--output", "g.png"], "--format text cannot be rendered to .png"),
        (["--output", "g.jpeg"], "cannot tell the format from '.jpeg'"),
        (["--format", "svg"], "Invalid value for '--format'"),
    ],
)
def test_bad_format_and_output_exit_2(tmp_path, monkeypatch, args, expected_error):
    """A format the output file cannot hold is refused before anything is written."""
    monkeypatch.chdir(tmp_path)
    result = invoke("graph", ROOT / "specs" / "seed.yaml", *args)
    assert result.exit_code == 2
    assert expected_error in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_bad_spec_is_a_located_error(tmp_path):
    """The spec is validated first: errors name file:line as `validate` does."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(WEIGHTED.replace("inputs: [trunk], units: 1", "inputs: [trunc], units: 1"))
    result = invoke("graph", bad)
    assert result.exit_code == 2
    assert (
        "bad.yaml:8: nodes[1].inputs: unknown node 'trunc' (did you mean 'trunk'?)" in result.output
    )


def test_without_graphviz_an_image_says_how_to_install_it(tmp_path, monkeypatch):
    """No `dot` on PATH: exit 2, how to install Graphviz, and how to get the text instead."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = invoke("graph", ROOT / "specs" / "seed.yaml", "--output", tmp_path / "g.png")
    assert result.exit_code == 2
    assert "needs Graphviz's `dot` program, which is not on PATH" in result.output
    assert "apt install graphviz" in result.output
    assert "--output graph.dot" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "g.png").exists()


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("suffix", [".png", ".svg"])
@pytest.mark.parametrize("spec", SHIPPED_SPECS, ids=[p.stem for p in SHIPPED_SPECS])
def test_images_are_rendered_by_graphviz(tmp_path, spec, suffix):
    """Every spec renders to PNG and SVG; the SVG names every node."""
    out = tmp_path / f"graph{suffix}"
    result = invoke("graph", spec, "--output", out)
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        svg = data.decode()
        assert "<svg" in svg
        graph = load_graph(spec)
        for item in collapse(graph, parameter_counts(graph)):
            assert f">{item.name}<" in svg


def test_graph_runs_as_a_real_process():
    """The installed `graphnet graph` prints dot text."""
    script = shutil.which("graphnet", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "graphnet"]
    process = subprocess.run(
        [*command, "graph", str(ROOT / "specs" / "two_inputs.yaml"), "--format", "dot"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.startswith('digraph "two-inputs" {')
    assert "n0 -> n2;" in process.stdout  # branch_a -> joined


RESIDUAL = ROOT / "specs" / "residual.yaml"


def test_a_block_instance_is_one_box_with_its_block_copies_shape_and_parameters():
    """By default an instance is one line: its name, block ×copies, output shape, parameters,
    and what it reads from outside; edges go between instances and nodes."""
    result = invoke("graph", RESIDUAL)
    assert result.exit_code == 0, result.output
    assert "\nnodes\n  embed  dense        [16]  48 params   <- x\n" in result.output
    assert "  body   residual ×2  [16]  544 params  <- embed\n" in result.output
    assert "  out    dense        [1]   17 params   <- body\n" in result.output
    assert "body.1" not in result.output
    graph = load_graph(RESIDUAL)
    mermaid, dot = to_mermaid(graph), to_dot(graph)
    assert '  b1["body<br/>residual ×2 [16]<br/>544 params"]' in mermaid
    assert "  n0 --> b1\n  b1 --> n7\n" in mermaid
    assert '<b>body</b><br/><font point-size="10">residual ×2 [16]</font>' in dot
    assert "  n0 -> b1;\n  b1 -> n7;\n" in dot
    assert "subgraph" not in mermaid + dot


def test_expand_groups_every_node_of_an_instance():
    """`--expand`: the instance's line, then its nodes indented (text); a subgraph per instance
    (mermaid) and a cluster (dot) holding its nodes, edges between the nodes themselves."""
    text = invoke("graph", RESIDUAL, "--expand").output
    assert (
        "  body          residual ×2  [16]  544 params  <- embed\n"
        "    body.1.fc   dense        [16]  272 params  <- embed\n"
        "    body.1.act  relu         [16]              <- body.1.fc\n"
    ) in text
    assert "  out           dense        [1]   17 params   <- body.2.sum\n" in text
    graph = load_graph(RESIDUAL)
    mermaid = to_mermaid(graph, expand=True)
    inside = re.search(
        r'^  subgraph s1 \["body: residual ×2 \(544 params\)"\]\n(.*?)^  end$', mermaid, re.S | re.M
    )
    assert inside, mermaid
    assert re.findall(r"^    (n\d)\[", inside.group(1), re.M) == [f"n{k}" for k in range(1, 7)]
    assert "  n0 --> n1\n" in mermaid and "  n6 --> n7\n" in mermaid
    dot = to_dot(graph, expand=True)
    cluster = re.search(
        r"^  subgraph cluster_s1 \{ label=\"body: residual ×2 \(544 params\)\";.*?\n(.*?)^  \}$",
        dot,
        re.S | re.M,
    )
    assert cluster, dot
    assert len(re.findall(r"^    n\d \[label=", cluster.group(1), re.M)) == 6
    assert "  n6 -> n7;" in dot


NESTED = """\
name: nested
inputs: {x: {shape: [4]}, y: {shape: [1]}}
blocks:
  residual:
    inputs: [h]
    options: {units: 4}
    nodes:
      - {name: fc, type: dense, inputs: [h], units: $units}
      - {name: sum, type: add, inputs: [h, fc]}
    output: sum
  stage:
    inputs: [h, skip]
    nodes:
      - {name: res, type: residual, inputs: [h], repeat: 2}
      - {name: join, type: concat, inputs: [res, skip]}
      - {name: squeeze, type: dense, inputs: [join], units: 4}
    output: squeeze
nodes:
  - {name: stem, type: dense, inputs: [x], units: 4}
  - {name: a, type: stage, inputs: [stem, x]}
  - {name: b, type: stage, inputs: [a, stem]}
  - {name: out, type: dense, inputs: [b], units: 1}
loss: {type: mse, inputs: [out, y]}
"""


@pytest.mark.parametrize("expand", [False, True])
def test_graph_and_summary_agree_on_instances_of_nested_blocks(tmp_path, expand):
    """Nested instances belong to their top-level instance; `graph` and `summary` give each
    instance (or with --expand each node) the same inputs, shape and parameter count, and the
    counts add up to the network's."""
    from conftest import rows

    path = tmp_path / "nested.yaml"
    path.write_text(NESTED, encoding="utf-8")
    flag = ["--expand"] if expand else []
    table = {row[0]: row for row in rows(invoke("summary", path, *flag).output)[1:-1]}
    text = invoke("graph", path, "--format", "text", *flag).output
    graph = load_graph(path)
    names = [n.name for n in graph.nodes] if expand else ["stem", "a", "b", "out"]
    for name in names:
        _, kind, inputs, shape_, count = table[name]
        line = next(line for line in text.splitlines() if line.split()[:1] == [name])
        assert kind in line and shape_ in line and line.endswith("<- " + inputs)
        assert (f"{count} param" in line) == (count != "0")
    if not expand:
        assert table["a"][1:] == ["stage", "stem, x", "[4]", f"{2 * 20 + 36:,}"]
        assert table["b"][2] == "a, stem"
    total = sum(int(row[4].replace(",", "")) for name, row in table.items() if name in names)
    assert total == sum(p.size for p in graphnet.build(graph.spec).params.values())


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
def test_graphviz_renders_the_clusters_of_expand(tmp_path):
    """`--expand --output g.svg`: Graphviz draws each instance's cluster with its label and
    every node inside."""
    out = tmp_path / "g.svg"
    result = invoke("graph", RESIDUAL, "--expand", "--output", out)
    assert result.exit_code == 0, result.output
    svg = out.read_text(encoding="utf-8")
    assert '<g id="clust1" class="cluster">' in svg
    assert "body: residual ×2 (544 params)" in svg
    for node in load_graph(RESIDUAL).nodes:
        assert f">{node.name}<" in svg
