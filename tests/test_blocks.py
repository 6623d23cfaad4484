"""Reusable blocks: ``blocks:``, ``repeat``, ``$option``, ``include:``, expanded before validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import invoke, write_file

import graphnet

HEAD = """\
name: deep
data: {source: synthetic, function: product, samples: 40}
inputs: {x: {shape: [2]}, y: {shape: [1]}}
"""
RESIDUAL = """\
blocks:
  residual:
    inputs: [in]
    options: {units: 8}
    nodes:
      - {name: fc1, type: dense, inputs: [in], units: $units}
      - {name: act, type: relu,  inputs: [fc1]}
      - {name: sum, type: add,   inputs: [in, act]}
    output: sum
"""
TAIL = """\
loss: {type: mse, inputs: [out, y]}
train: {epochs: 2, batch_size: 10, optimizer: {type: sgd, lr: 0.01}}
"""


def spec_text(nodes: str, blocks: str = RESIDUAL, head: str = HEAD) -> str:
    return head + blocks + "nodes:\n" + nodes + TAIL


DEEP = spec_text(
    """\
  - {name: stem, type: dense,    inputs: [x], units: 8}
  - {name: body, type: residual, inputs: [stem], repeat: 3}
  - {name: out,  type: dense,    inputs: [body], units: 1}
"""
)


def names(path: Path, *overrides: str) -> list[str]:
    return [n.name for n in graphnet.load_spec(path, list(overrides)).nodes]


def test_repeat_expands_to_numbered_copies_each_reading_the_one_before(tmp_path: Path) -> None:
    """`repeat: N` makes `<node>.<i>.<inner>` nodes, i from 1; the node's name is its output."""
    spec = graphnet.load_spec(write_file(tmp_path, DEEP, "deep.yaml"))
    by_name = {n.name: n for n in spec.nodes}
    assert [n.name for n in spec.nodes][:4] == ["stem", "body.1.fc1", "body.1.act", "body.1.sum"]
    assert len(spec.nodes) == 2 + 3 * 3
    assert by_name["body.1.fc1"].inputs == ["stem"]
    assert by_name["body.2.fc1"].inputs == ["body.1.sum"]
    assert by_name["body.2.sum"].inputs == ["body.1.sum", "body.2.act"]
    assert by_name["out"].inputs == ["body.3.sum"]
    assert by_name["body.3.fc1"].options_model.units == 8  # type: ignore[attr-defined]


def test_an_instance_without_repeat_and_its_inline_options(tmp_path: Path) -> None:
    """Without repeat the names are `<node>.<inner>`; inline keys override the block's options."""
    text = spec_text(
        """\
  - {name: body, type: residual, inputs: [x], units: 2}
  - {name: out,  type: dense,    inputs: [body], units: 1}
"""
    )
    spec = graphnet.load_spec(write_file(tmp_path, text, "one.yaml"))
    assert [n.name for n in spec.nodes] == ["body.fc1", "body.act", "body.sum", "out"]
    assert spec.nodes[0].options_model.units == 2  # type: ignore[attr-defined]


def test_nested_blocks(tmp_path: Path) -> None:
    """A block may use a block; names nest: `<node>.<inner>.<i>.<inner>`."""
    blocks = (
        RESIDUAL
        + """\
  stack:
    inputs: [h]
    options: {width: 8, depth: 2}
    nodes:
      - {name: res, type: residual, inputs: [h], units: $width, repeat: $depth}
      - {name: act, type: tanh, inputs: [res]}
    output: act
"""
    )
    text = spec_text(
        """\
  - {name: stem, type: dense, inputs: [x], units: 8}
  - {name: body, type: stack, inputs: [stem], repeat: 2}
  - {name: out,  type: dense, inputs: [body], units: 1}
""",
        blocks,
    )
    got = names(write_file(tmp_path, text, "nested.yaml"))
    assert got[1:5] == [
        "body.1.res.1.fc1",
        "body.1.res.1.act",
        "body.1.res.1.sum",
        "body.1.res.2.fc1",
    ]
    assert got[-2:] == ["body.2.act", "out"]
    assert len(got) == 2 + 2 * (2 * 3 + 1)


def test_set_reaches_block_options_and_repeat(tmp_path: Path) -> None:
    """`--set blocks.<b>.options.<o>=` and `--set nodes.<instance>.repeat=` are plain keys."""
    path = write_file(tmp_path, DEEP, "deep.yaml")
    assert len(names(path, "nodes.body.repeat=10")) == 2 + 30
    spec = graphnet.load_spec(path, ["blocks.residual.options.units=4", "nodes.stem.units=4"])
    assert spec.nodes[1].options_model.units == 4  # type: ignore[attr-defined]
    result = invoke("validate", path, "--set", "nodes.body.repeat=2")
    assert result.exit_code == 0, result.output
    assert "8 nodes" in result.output


def test_a_block_spec_trains_like_its_hand_expanded_twin(tmp_path: Path) -> None:
    """The same bits: blocks are a way of writing nodes, nothing else."""
    twin = HEAD + "nodes:\n  - {name: stem, type: dense, inputs: [x], units: 8}\n"
    previous = "stem"
    for i in range(1, 4):
        twin += (
            f"  - {{name: body.{i}.fc1, type: dense, inputs: [{previous}], units: 8}}\n"
            f"  - {{name: body.{i}.act, type: relu, inputs: [body.{i}.fc1]}}\n"
            f"  - {{name: body.{i}.sum, type: add, inputs: [{previous}, body.{i}.act]}}\n"
        )
        previous = f"body.{i}.sum"
    twin += f"  - {{name: out, type: dense, inputs: [{previous}], units: 1}}\n" + TAIL
    write_file(tmp_path, twin, "twin.yaml")
    block = graphnet.load_spec(write_file(tmp_path, DEEP, "deep.yaml"))
    # the hand-expanded twin is what a run's spec.yaml holds: a resolved spec
    from graphnet.api import load_graph

    expanded = load_graph(tmp_path / "twin.yaml", resolved=True).spec
    a = graphnet.train(block, tmp_path / "a")
    b = graphnet.train(expanded, tmp_path / "b")
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    from conftest import assert_same_bits, read_npz

    assert_same_bits(
        read_npz(tmp_path / "a" / "weights.npz"), read_npz(tmp_path / "b" / "weights.npz")
    )
    assert "body.2.fc1/W" in read_npz(tmp_path / "a" / "weights.npz")
    network = graphnet.load_run(tmp_path / "a")  # the run's spec.yaml, expanded, loads again
    assert "body.3.sum" in network.graph.shapes


BAD = [
    (  # not a name at all (a list): still the block's line, not a crash
        spec_text(
            "  - {name: out, type: dense, inputs: [x], units: 1}\n",
            RESIDUAL.replace("output: sum", "output: []"),
        ),
        "bad.yaml:12: blocks.residual.output: block 'residual' has no node []",
    ),
    (  # a value inside a block names the block's line and the instance
        spec_text(
            "  - {name: body, type: residual, inputs: [x], repeat: 2, units: -3}\n"
            "  - {name: out, type: dense, inputs: [body], units: 1}\n"
        ),
        "bad.yaml:9: blocks.residual.nodes[0].units (in body.1): input should be greater",
    ),
    (
        spec_text(
            "  - {name: out, type: dense, inputs: [x], units: 1}\n",
            RESIDUAL.replace("units: $units", "units: $unit"),
        ),
        "bad.yaml:9: blocks.residual.nodes[0].units: unknown option '$unit' of block 'residual' "
        "(did you mean 'units'?)",
    ),
    (
        spec_text("  - {name: out, type: dense, inputs: [x], units: $units}\n"),
        "bad.yaml:14: nodes[0].units: '$units' outside a block",
    ),
    (
        spec_text(
            "  - {name: b, type: residual, inputs: [x], repeat: 0}\n"
            "  - {name: out, type: dense, inputs: [b], units: 1}\n"
        ),
        "bad.yaml:14: nodes[0].repeat: repeat: a whole number of copies, at least 1; got 0",
    ),
    (
        spec_text(
            "  - {name: b, type: residual, inputs: [x], repeat: -2}\n"
            "  - {name: out, type: dense, inputs: [b], units: 1}\n"
        ),
        "repeat: a whole number of copies, at least 1; got -2",
    ),
    (
        spec_text(
            "  - {name: out, type: dense, inputs: [x], units: 1}\n",
            "blocks:\n  dense:\n    inputs: [i]\n    nodes: [{name: a, type: relu, inputs: [i]}]\n"
            "    output: a\n",
        ),
        "bad.yaml:6: blocks.dense: block 'dense' has the name of a layer type",
    ),
    (
        spec_text(
            "  - {name: b, type: ping, inputs: [x]}\n"
            "  - {name: out, type: dense, inputs: [b], units: 1}\n",
            "blocks:\n"
            "  ping: {inputs: [i], nodes: [{name: a, type: pong, inputs: [i]}], output: a}\n"
            "  pong: {inputs: [i], nodes: [{name: a, type: ping, inputs: [i]}], output: a}\n",
        ),
        "blocks use each other in a cycle: ping -> pong -> ping",
    ),
    (  # a repeated block must keep its shape
        spec_text(
            "  - {name: body, type: squeeze, inputs: [x], repeat: 3}\n"
            "  - {name: out, type: dense, inputs: [body], units: 1}\n",
            "blocks:\n"
            "  squeeze: {inputs: [i], nodes: [{name: a, type: dense, inputs: [i], units: 5}],"
            " output: a}\n",
        ),
        "bad.yaml:7: nodes[0]: block 'squeeze' is repeated, so each copy reads the one before it,"
        " but its output shape [5] (body.1.a) differs from its input's [2] (x)",
    ),
    (  # counted before expanding
        spec_text(
            "  - {name: b, type: big, inputs: [x], repeat: 1000}\n"
            "  - {name: out, type: dense, inputs: [b], units: 1}\n",
            RESIDUAL + "  big:\n    inputs: [i]\n"
            "    nodes: [{name: r, type: residual, inputs: [i], repeat: 1000}]\n    output: r\n",
        ),
        "bad.yaml:18: nodes[0]: the blocks expand to more than 100,000 nodes",
    ),
    (
        spec_text(
            "  - {name: b, type: residual, inputs: [x], unit: 3}\n"
            "  - {name: out, type: dense, inputs: [b], units: 1}\n"
        ),
        "unknown option 'unit' for block 'residual' (did you mean 'units'?)",
    ),
    (  # inside a block as at the top: repeat is for instances
        spec_text(
            "  - {name: b, type: residual, inputs: [x], units: 2}\n"
            "  - {name: out, type: dense, inputs: [b], units: 1}\n",
            RESIDUAL.replace("inputs: [fc1]}", "inputs: [fc1], repeat: 2}"),
        ),
        "bad.yaml:10: blocks.residual.nodes[1].repeat (in b): repeat is for block instances; "
        "'relu' is a layer type",
    ),
    (
        spec_text("  - {name: a.b, type: dense, inputs: [x], units: 1}\n"),
        "bad.yaml:14: nodes[0].name: 'a.b' is not a valid node name",
    ),
    (
        spec_text(
            "  - {name: out, type: dense, inputs: [x], units: 1}\n",
            "include: [missing.yaml]\n",
        ),
        "bad.yaml:4: include[0]: include file not found",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_block_errors_exit_2_located(tmp_path: Path, text: str, expected: str) -> None:
    """Every mistake in blocks is a spec error that says where (exit status 2)."""
    result = invoke("validate", write_file(tmp_path, text, "bad.yaml"))
    assert result.exit_code == 2, result.output
    assert expected in result.output


def test_include_reads_blocks_relative_to_the_including_file(tmp_path: Path) -> None:
    """`include:` names files relative to the including one; they may include others."""
    (tmp_path / "lib").mkdir()
    write_file(tmp_path / "lib", "include: [more.yaml]\n" + RESIDUAL, "common.yaml")
    write_file(
        tmp_path / "lib",
        "blocks:\n  act: {inputs: [i], nodes: [{name: t, type: tanh, inputs: [i]}], output: t}\n",
        "more.yaml",
    )
    text = spec_text(
        "  - {name: body, type: residual, inputs: [x], repeat: 2, units: 2}\n"
        "  - {name: a, type: act, inputs: [body]}\n"
        "  - {name: out, type: dense, inputs: [a], units: 1}\n",
        "include: [lib/common.yaml]\n",
    )
    got = names(write_file(tmp_path, text, "spec.yaml"))
    assert got[-2:] == ["a.t", "out"]


INCLUDE_ERRORS = [
    ("include: [b.yaml]\n", "include: [a.yaml]\n", "include cycle: a.yaml -> b.yaml -> a.yaml"),
    ("include: [b.yaml]\n" + RESIDUAL, RESIDUAL, "block 'residual' is defined twice"),
    ("include: [b.yaml]\n", "blocks: {}\nnodes: []\n", "b.yaml:2: nodes: an included file holds"),
    ("include: [b.yaml]\n", RESIDUAL.replace("units: $units", "units: $x"), "b.yaml:6: blocks"),
]


@pytest.mark.parametrize(("a", "b", "expected"), INCLUDE_ERRORS)
def test_include_errors_are_located(tmp_path: Path, a: str, b: str, expected: str) -> None:
    """An include cycle, a block defined twice, a file that is not blocks: exit 2, located."""
    write_file(tmp_path, a, "a.yaml")
    write_file(tmp_path, b, "b.yaml")
    text = spec_text("  - {name: out, type: dense, inputs: [x], units: 1}\n", "include: [a.yaml]\n")
    result = invoke("validate", write_file(tmp_path, text, "spec.yaml"))
    assert result.exit_code == 2, result.output
    assert expected in result.output


def test_the_schema_describes_blocks_and_include(tmp_path: Path) -> None:
    """`graphnet schema` knows `blocks:` and `include:`; a spec with blocks validates."""
    import jsonschema

    from graphnet.registry import get_registry
    from graphnet.schema import spec_schema
    from graphnet.specfile import read

    schema = spec_schema(get_registry())
    assert "blocks" in schema["properties"] and "include" in schema["properties"]
    validator = jsonschema.Draft202012Validator(schema)
    data, _ = read(write_file(tmp_path, DEEP, "deep.yaml"))
    assert list(validator.iter_errors(data)) == []
    data.pop("blocks")  # without blocks, an unknown type is refused as before
    assert list(validator.iter_errors(data))


class PublishesABlock:
    """A plugin object publishing one block through `graphnet_blocks`."""

    @graphnet.hookimpl
    def graphnet_blocks(self) -> dict[str, object]:
        return {
            "twice": {
                "inputs": ["in"],
                "nodes": [
                    {"name": "a", "type": "tanh", "inputs": ["in"]},
                    {"name": "b", "type": "tanh", "inputs": ["a"]},
                ],
                "output": "b",
            }
        }


def test_a_plugin_publishes_a_block(tmp_path: Path, register: object) -> None:
    """A block returned by `graphnet_blocks` is used as a node type, like the spec's own."""
    register(PublishesABlock(), "twice-plugin")  # type: ignore[operator]
    text = spec_text(
        "  - {name: t, type: twice, inputs: [x]}\n"
        "  - {name: out, type: dense, inputs: [t], units: 1}\n",
        "",
    )
    assert names(write_file(tmp_path, text, "p.yaml")) == ["t.a", "t.b", "out"]


def test_summary_shows_an_instance_as_one_row_and_print_the_spec_as_written(
    tmp_path: Path,
) -> None:
    """`summary` gives a block instance one row with its parameters (`--expand`: every node);
    `validate --print` shows the spec as written, `--expand` the expanded nodes."""
    from conftest import rows

    path = write_file(tmp_path, DEEP, "deep.yaml")
    table = rows(invoke("summary", path).output)
    assert ["body", "residual ×3", "stem", "[8]", f"{3 * 72:,}"] in table
    assert ["out", "dense", "body", "[1]", "9"] in table
    assert len(rows(invoke("summary", path, "--expand").output)) == len(table) + 3 * 3 - 1
    written = invoke("validate", path, "--print", "--set", "nodes.body.repeat=2").output
    assert "repeat: 2  # from --set nodes.body.repeat=2" in written and "$units" in written
    expanded = invoke("validate", path, "--print", "--expand").output
    assert "name: body.3.sum" in expanded and "blocks:" not in expanded


def test_an_include_name_with_a_control_character_is_a_located_error(tmp_path):
    """`include: ["a\\x00b.yaml"]` is refused as no file name (exit 2), not an internal error."""
    path = tmp_path / "spec.yaml"
    path.write_text('include: ["a\\x00b.yaml"]\n' + DEEP, encoding="utf-8")
    with pytest.raises(graphnet.SpecError, match="is not a file name"):
        graphnet.load_spec(path)


def test_a_repeated_instance_may_read_another_instance(tmp_path: Path) -> None:
    """`repeat` on an instance whose input is another instance checks the shape of that
    instance's output (it was a KeyError, an internal error)."""
    text = spec_text(
        "  - {name: first, type: residual, inputs: [x], units: 2}\n"
        "  - {name: body, type: residual, inputs: [first], units: 2, repeat: 2}\n"
        "  - {name: out, type: dense, inputs: [body], units: 1}\n"
    )
    got = names(write_file(tmp_path, text, "chain.yaml"))
    assert got[3:5] == ["body.1.fc1", "body.1.act"]
    grow = (
        "  grow: {inputs: [i], nodes: [{name: a, type: dense, inputs: [i], units: 5}], output: a}\n"
    )
    bad = spec_text(
        "  - {name: first, type: residual, inputs: [x], units: 2}\n"
        "  - {name: body, type: grow, inputs: [first], repeat: 2}\n"
        "  - {name: out, type: dense, inputs: [body], units: 1}\n",
        RESIDUAL + grow,
    )
    result = invoke("validate", write_file(tmp_path, bad, "bad.yaml"))
    assert result.exit_code == 2, result.output
    assert "bad.yaml:16: nodes[1]: block 'grow' is repeated" in result.output
    assert "differs from its input's [2] (first.sum)" in result.output


def test_the_run_folders_spec_keeps_its_blocks_and_runs_again_to_the_same_bits(
    tmp_path: Path,
) -> None:
    """A run's spec.yaml holds the blocks (included ones copied in, `include:` dropped, --set
    applied) and the instances as written: `graphnet run <run>/spec.yaml` trains the same bits;
    --resume names a changed instance option; load_run, predict, evaluate and export read it."""
    from conftest import read_npz

    (tmp_path / "lib").mkdir()
    write_file(tmp_path / "lib", RESIDUAL, "common.yaml")
    text = DEEP.replace(RESIDUAL, "include: [lib/common.yaml]\n")
    spec = write_file(tmp_path, text, "deep.yaml")
    first, again = tmp_path / "first", tmp_path / "again"
    overrides = ["--set", "nodes.body.units=8", "--set", "nodes.body.repeat=2"]
    result = invoke("run", spec, "--out", first, "-q", *overrides)
    assert result.exit_code == 0, result.output
    saved = (first / "spec.yaml").read_text(encoding="utf-8")
    assert "include" not in saved and "body.1" not in saved
    assert "blocks:\n  residual:\n" in saved and "units: $units" in saved
    assert "repeat: 2" in saved and "init: glorot_uniform" in saved  # defaults filled in
    result = invoke("run", first / "spec.yaml", "--out", again, "-q")
    assert result.exit_code == 0, result.output
    assert read_npz(first / "weights.npz").keys() >= {"body.2.fc1/W"}
    assert (first / "weights.npz").read_bytes() == (again / "weights.npz").read_bytes()
    assert (again / "spec.yaml").read_text(encoding="utf-8") == saved
    shrunk = ["--set", "nodes.body.units=4", "--set", "nodes.stem.units=4"]
    changed = invoke("run", first / "spec.yaml", "--out", first, "--resume", *shrunk)
    assert changed.exit_code == 2
    assert "nodes[1].units: 8 in the run, 4 now" in changed.output
    more = invoke(
        "run", spec, "--out", first, "--resume", "-q", *overrides, "--set", "train.epochs=3"
    )
    assert more.exit_code == 0, more.output
    network = graphnet.load_run(first)
    assert "body.2.sum" in network.graph.shapes
    inputs = write_file(tmp_path, "x_0,x_1,y_0\n0.5,0.25,1.25\n", "new.csv")
    assert set(graphnet.evaluate(first, inputs)) >= {"loss"}
    predicted = invoke("predict", first, "--input", inputs)
    assert predicted.exit_code == 0, predicted.output
    assert predicted.output.startswith("out_0\n")
    pytest.importorskip("onnx")
    graphnet.export_onnx(first, tmp_path / "deep.onnx")
    assert (tmp_path / "deep.onnx").stat().st_size > 0


def test_a_run_folder_saved_with_expanded_blocks_still_loads_and_resumes(tmp_path: Path) -> None:
    """A run folder whose spec.yaml holds the expanded nodes (as graphnet saved specs with
    blocks before) loads, and --resume with the block spec accepts it."""
    import yaml

    spec = write_file(tmp_path, DEEP, "deep.yaml")
    run = tmp_path / "run"
    assert invoke("run", spec, "--out", run, "-q").exit_code == 0
    expanded = graphnet.load_spec(spec).to_dict()
    (run / "spec.yaml").write_text(yaml.safe_dump(expanded, sort_keys=False), encoding="utf-8")
    assert "body.3.sum" in graphnet.load_run(run).graph.shapes
    result = invoke("run", spec, "--out", run, "--resume", "-q", "--set", "train.epochs=3")
    assert result.exit_code == 0, result.output


def test_a_spec_block_named_like_a_plugin_block_is_used_with_a_warning(
    tmp_path: Path, register: object
) -> None:
    """The spec's own block (or an included one) takes the place of a plugin's block of the
    same name, and a warning names where it is defined and the plugin's package."""
    register(PublishesABlock(), "twice-plugin")  # type: ignore[operator]
    own = "blocks:\n  twice: {inputs: [i], nodes: [{name: s, type: sigmoid, inputs: [i]}], output: s}\n"
    text = spec_text(
        "  - {name: t, type: twice, inputs: [x]}\n"
        "  - {name: out, type: dense, inputs: [t], units: 1}\n",
        own,
    )
    path = write_file(tmp_path, text, "p.yaml")
    with pytest.warns(graphnet.GraphnetWarning) as caught:
        assert names(path) == ["t.s", "out"]
    assert [str(w.message) for w in caught] == [
        f"{path}:5: blocks.twice: block 'twice' is also published by the plugin package "
        "'twice-plugin'; the spec's own is used (rename it to use the package's)"
    ]
    result = invoke("validate", path)
    assert result.exit_code == 0, result.output
    assert "warning: " in result.output and "plugin package 'twice-plugin'" in result.output


def test_repeat_chains_the_first_input_and_gives_every_copy_the_other_inputs(
    tmp_path: Path,
) -> None:
    """With several inputs and `repeat`, copy i+1 reads copy i's output as its first input; the
    other inputs are the instance's own, the same for every copy."""
    blocks = (
        "blocks:\n  mix:\n    inputs: [h, context]\n    nodes:\n"
        "      - {name: cat, type: concat, inputs: [h, context]}\n"
        "      - {name: fc, type: dense, inputs: [cat], units: 8}\n    output: fc\n"
    )
    text = spec_text(
        "  - {name: stem, type: dense, inputs: [x], units: 8}\n"
        "  - {name: body, type: mix, inputs: [stem, x], repeat: 3}\n"
        "  - {name: out, type: dense, inputs: [body], units: 1}\n",
        blocks,
    )
    spec = graphnet.load_spec(write_file(tmp_path, text, "mix.yaml"))
    inputs = {n.name: n.inputs for n in spec.nodes}
    assert inputs["body.1.cat"] == ["stem", "x"]
    assert inputs["body.2.cat"] == ["body.1.fc", "x"]
    assert inputs["body.3.cat"] == ["body.2.fc", "x"]
    assert inputs["out"] == ["body.3.fc"]


def test_a_file_included_twice_is_read_once(tmp_path: Path) -> None:
    """`a.yaml` and `b.yaml` both include `common.yaml`, the spec includes both: its blocks are
    defined once (they were 'defined twice' at the same line)."""
    write_file(tmp_path, RESIDUAL, "common.yaml")
    write_file(tmp_path, "include: [common.yaml]\n", "a.yaml")
    write_file(tmp_path, "include: [common.yaml]\n", "b.yaml")
    text = spec_text(
        "  - {name: body, type: residual, inputs: [x], units: 2}\n"
        "  - {name: out, type: dense, inputs: [body], units: 1}\n",
        "include: [a.yaml, b.yaml, common.yaml]\n",
    )
    assert names(write_file(tmp_path, text, "spec.yaml"))[-1] == "out"


def test_set_reaches_a_block_of_an_included_file(tmp_path: Path) -> None:
    """`--set blocks.<b>.options.<o>=` changes a block an included file defines (it was 'defined
    twice'); a block that no file defines is an error naming the --set and a close name."""
    write_file(tmp_path, RESIDUAL, "common.yaml")
    path = write_file(tmp_path, DEEP.replace(RESIDUAL, "include: [common.yaml]\n"), "deep.yaml")
    spec = graphnet.load_spec(path, ["blocks.residual.options.units=4", "nodes.stem.units=4"])
    assert spec.nodes[1].options_model.units == 4  # type: ignore[attr-defined]
    result = invoke("validate", path, "--set", "blocks.resdual.options.units=4")
    assert result.exit_code == 2
    assert (
        "error: --set blocks.resdual.options.units=4: no block 'resdual' "
        "(did you mean 'residual'?)" in result.output
    )


def test_set_cannot_change_a_plugins_block(tmp_path: Path, register: object) -> None:
    """A block a package publishes is changed on its instances, not with --set blocks...:
    an error that says so, naming the package."""
    register(PublishesABlock(), "twice-plugin")  # type: ignore[operator]
    text = spec_text(
        "  - {name: t, type: twice, inputs: [x]}\n"
        "  - {name: out, type: dense, inputs: [t], units: 1}\n",
        "",
    )
    path = write_file(tmp_path, text, "p.yaml")
    result = invoke("validate", path, "--set", "blocks.twice.output=a")
    assert result.exit_code == 2
    assert (
        "--set blocks.twice.output=a: block 'twice' is published by the plugin package "
        "'twice-plugin' and cannot be changed" in result.output
    )
