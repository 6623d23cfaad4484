"""The graph: node order, cycles, names and references, shape inference, unused nodes, scale.

A spec's graph is checked before any array exists; every error names the node, its type, the
shapes involved and file:line.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import invoke, write_spec

import graphnet
from graphnet.api import load_graph
from graphnet.registry import get_registry

HEADER = """\
inputs:
  x: {shape: [2]}
  y: {shape: [1]}
"""
# HEADER is lines 1-3; "nodes:" is line 4, so the first node is on line 5.


def spec_text(
    nodes: list[str], loss: str = "{type: mse, inputs: [out, y]}", extra: str = ""
) -> str:
    return HEADER + "nodes:\n" + "".join(f"  - {n}\n" for n in nodes) + f"loss: {loss}\n" + extra


def order(path: Path) -> list[str]:
    return [node.name for node in load_graph(path).nodes]


def error(path: Path, kind: type[graphnet.GraphnetError] = graphnet.SpecError) -> str:
    with pytest.raises(kind) as info:
        graphnet.load_spec(path)
    assert type(info.value) is kind
    return str(info.value)


# -- order -------------------------------------------------------------------------------------


def test_order_follows_inputs_whatever_the_file_order(tmp_path):
    """Nodes may be written in any order; each runs after the nodes it reads."""
    nodes = [
        "{name: out, type: dense, inputs: [act], units: 1}",
        "{name: act, type: relu, inputs: [hidden]}",
        "{name: hidden, type: dense, inputs: [x], units: 4}",
    ]
    assert order(write_spec(tmp_path, spec_text(nodes))) == ["hidden", "act", "out"]


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["c", "a", "b"], ["c", "a", "b", "join_c", "join_a", "join_b"]),
        (["b", "c", "a"], ["b", "c", "a", "join_b", "join_c", "join_a"]),
    ],
)
def test_ties_are_broken_by_file_order(tmp_path, names, expected):
    """Among nodes ready at the same time, the one written first runs first: the order is stable."""
    y2 = HEADER.replace("y: {shape: [1]}", "y: {shape: [2]}")
    nodes = [f"{{name: {n}, type: relu, inputs: [x]}}" for n in names]
    nodes += [f"{{name: join_{n}, type: relu, inputs: [{n}]}}" for n in names]
    losses = "".join(f"  - {{type: mse, inputs: [join_{n}, y]}}\n" for n in names)
    text = y2 + "nodes:\n" + "".join(f"  - {n}\n" for n in nodes) + "loss:\n" + losses
    path = write_spec(tmp_path, text)
    assert order(path) == expected
    assert order(path) == expected  # and again: nothing depends on hashing or timing


def test_independent_branches_keep_file_order_after_their_inputs(tmp_path):
    """A node becomes ready once its inputs have run, then goes by its place in the file: `d`,
    written first, runs as soon as `c` has, before `a`."""
    y2 = HEADER.replace("y: {shape: [1]}", "y: {shape: [2]}")
    nodes = [
        "{name: d, type: relu, inputs: [c]}",
        "{name: c, type: relu, inputs: [x]}",
        "{name: a, type: relu, inputs: [x]}",
        "{name: b, type: relu, inputs: [a]}",
    ]
    losses = "\n  - {type: mse, inputs: [d, y]}\n  - {type: mse, inputs: [b, y]}"
    path = write_spec(
        tmp_path, y2 + "nodes:\n" + "".join(f"  - {n}\n" for n in nodes) + "loss:" + losses
    )
    assert order(path) == ["c", "d", "a", "b"]


# -- cycles ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "cycle", "line", "index"),
    [
        (
            [
                "{name: a, type: relu, inputs: [b]}",
                "{name: b, type: relu, inputs: [a]}",
                "{name: out, type: dense, inputs: [b], units: 1}",
            ],
            "a -> b -> a",
            5,
            0,
        ),
        (
            [
                "{name: out, type: dense, inputs: [a], units: 1}",
                "{name: a, type: relu, inputs: [a]}",
            ],
            "a -> a",
            6,
            1,
        ),
        (
            [
                "{name: out, type: dense, inputs: [c], units: 1}",
                "{name: pre, type: relu, inputs: [x]}",
                "{name: b, type: relu, inputs: [a]}",
                "{name: c, type: relu, inputs: [b]}",
                "{name: a, type: relu, inputs: [c]}",
            ],
            "b -> c -> a -> b",
            7,
            2,
        ),
    ],
    ids=["two", "self-loop", "three-behind-others"],
)
def test_cycles_are_named(tmp_path, nodes, cycle, line, index):
    """A cycle is an error naming the nodes on it in data-flow order, from the first in the file."""
    path = write_spec(tmp_path, spec_text(nodes))
    assert error(path) == f"{path}:{line}: nodes[{index}].inputs: cycle: {cycle}"


# -- names and references ----------------------------------------------------------------------


def test_duplicate_node_name(tmp_path):
    """Two nodes with one name is an error pointing at the second and naming the first."""
    nodes = [
        "{name: out, type: dense, inputs: [x], units: 1}",
        "{name: out, type: relu, inputs: [x]}",
    ]
    path = write_spec(tmp_path, spec_text(nodes))
    assert error(path) == (
        f"{path}:6: nodes[1].name: duplicate node name 'out' (first at {path}:5: nodes[0])"
    )


def test_node_named_like_an_input(tmp_path):
    """Inputs and nodes share one namespace: a node called `x` next to input `x` is an error."""
    nodes = ["{name: x, type: dense, inputs: [y], units: 1}"]
    path = write_spec(tmp_path, spec_text(nodes, "{type: mse, inputs: [x, y]}"))
    message = error(path)
    assert message.startswith(f"{path}:5: nodes[0].name: node 'x' has the name of an input")


@pytest.mark.parametrize(
    ("nodes", "loss", "extra", "where", "expected"),
    [
        (
            [
                "{name: hidden, type: dense, inputs: [x], units: 4}",
                "{name: out, type: dense, inputs: [hiden], units: 1}",
            ],
            "{type: mse, inputs: [out, y]}",
            "",
            "6: nodes[1].inputs",
            "unknown node 'hiden' (did you mean 'hidden'?)",
        ),
        (
            [
                "{name: out, type: dense, inputs: [x], units: 1}",
            ],
            "{type: mse, inputs: [out, z]}",
            "",
            "6: loss[0].inputs",
            "unknown node 'z'",
        ),
        (
            ["{name: out, type: dense, inputs: [x], units: 1}"],
            "{type: mse, inputs: [out, y]}",
            "outputs: [otu]\n",
            "7: outputs",
            "unknown node 'otu' (did you mean 'out'?)",
        ),
    ],
    ids=["node-input", "loss-input", "outputs"],
)
def test_unknown_references_suggest_a_close_name(tmp_path, nodes, loss, extra, where, expected):
    """A reference to a name that is neither an input nor a node is located, with a suggestion."""
    path = write_spec(tmp_path, spec_text(nodes, loss, extra))
    assert error(path) == f"{path}:{where}: {expected}"


def test_unknown_reference_in_a_block_list_names_its_own_line(tmp_path):
    """In a multi-line `inputs:` list, the error points at the line of the bad name itself."""
    text = HEADER + (
        "nodes:\n"
        "  - name: out\n"
        "    type: dense\n"
        "    units: 1\n"
        "    inputs:\n"
        "      - xx\n"
        "loss: {type: mse, inputs: [out, y]}\n"
    )
    path = write_spec(tmp_path, text)
    assert error(path) == f"{path}:9: nodes[0].inputs: unknown node 'xx' (did you mean 'x'?)"


# -- shapes ------------------------------------------------------------------------------------


def test_shapes_are_inferred_for_every_node(tmp_path):
    """Every node's per-sample output shape is known before training."""
    nodes = [
        "{name: hidden, type: dense, inputs: [x], units: 5}",
        "{name: act, type: relu, inputs: [hidden]}",
        "{name: out, type: dense, inputs: [act], units: 1}",
    ]
    graph = load_graph(write_spec(tmp_path, spec_text(nodes)))
    assert {node.name: node.shape for node in graph.nodes} == {
        "hidden": (5,),
        "act": (5,),
        "out": (1,),
    }
    assert graph.nodes[-1].input_shapes == ((5,),)


def test_loss_shape_mismatch_names_both_shapes(tmp_path):
    """mse of a [3] prediction against a [1] target names the loss, both inputs and both shapes."""
    nodes = ["{name: out, type: dense, inputs: [x], units: 3}"]
    path = write_spec(tmp_path, spec_text(nodes))
    message = error(path, graphnet.ShapeError)
    assert message.startswith(f"{path}:6: loss[0].inputs: loss 'mse': ")
    assert "[3]" in message
    assert "[1]" in message
    assert message.endswith("input shapes: out [3], y [1]")


def test_layer_shape_error_names_node_type_and_shapes(tmp_path):
    """A layer refusing its input shapes is reported with the node, its type and the shapes."""
    text = spec_text(["{name: out, type: dense, inputs: [x], units: 1}"]).replace(
        "x: {shape: [2]}", "x: {shape: []}"
    )
    path = write_spec(tmp_path, text)
    message = error(path, graphnet.ShapeError)
    assert message.startswith(f"{path}:5: nodes[0].inputs: node 'out' (dense): ")
    assert "at least one axis" in message
    assert message.endswith("input shapes: x []")


def test_add_of_two_shapes_names_both(tmp_path):
    """`add` of a [2] and a [1] input is a shape error naming the node and both shapes."""
    nodes = [
        "{name: sum, type: add, inputs: [x, y]}",
        "{name: out, type: dense, inputs: [sum], units: 1}",
    ]
    path = write_spec(tmp_path, spec_text(nodes))
    message = error(path, graphnet.ShapeError)
    assert message.startswith(f"{path}:5: nodes[0].inputs: node 'sum' (add): ")
    assert message.endswith("input shapes: x [2], y [1]")


@pytest.mark.parametrize(
    ("node", "loss", "where", "expected"),
    [
        (
            "{name: out, type: dense, inputs: [x, y], units: 1}",
            "{type: mse, inputs: [out, y]}",
            "5: nodes[0].inputs",
            "node 'out' (dense) takes 1 input, got 2",
        ),
        (
            "{name: out, type: dense, inputs: [x], units: 1}",
            "{type: mse, inputs: [out]}",
            "6: loss[0].inputs",
            "loss 'mse' takes 2 inputs, got 1",
        ),
    ],
    ids=["dense", "mse"],
)
def test_wrong_number_of_inputs(tmp_path, node, loss, where, expected):
    """A node or loss given more or fewer inputs than it takes is an arity error, located."""
    path = write_spec(tmp_path, spec_text([node], loss))
    assert error(path) == f"{path}:{where}: {expected}"


class BadShapes(graphnet.Layer):
    """A layer whose output_shape misbehaves."""

    type = "bad_shapes_graph_test"

    def output_shape(self, input_shapes: Any) -> Any:
        if input_shapes[0] == (2,):
            raise ValueError("cannot handle pairs")
        return [0]


class BadShapesPlugin:
    @graphnet.hookimpl
    def graphnet_layers(self) -> list[type[graphnet.Layer]]:
        return [BadShapes]


@pytest.fixture
def bad_shapes() -> Iterator[None]:
    registry = get_registry()
    registry.register(BadShapesPlugin(), "test-bad-shapes")
    yield
    registry.unregister("test-bad-shapes")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x", "node 'bad' (bad_shapes_graph_test): output_shape failed: ValueError: cannot"),
        ("y", "node 'bad' (bad_shapes_graph_test): output_shape returned [0], not a list of"),
    ],
)
def test_a_plugin_bug_in_output_shape_names_the_node(tmp_path, bad_shapes, source, expected):
    """A plugin whose output_shape crashes or returns nonsense is named, not a traceback."""
    nodes = [
        f"{{name: bad, type: bad_shapes_graph_test, inputs: [{source}]}}",
        "{name: out, type: dense, inputs: [bad], units: 1}",
    ]
    path = write_spec(tmp_path, spec_text(nodes))
    message = error(path, graphnet.PluginFailure)
    assert message.startswith(f"{path}:5: nodes[0]: {expected}")


# -- nodes that reach no loss ------------------------------------------------------------------


SPARE = [
    "{name: out, type: dense, inputs: [x], units: 1}",
    "{name: spare, type: relu, inputs: [x]}",
]


def test_node_reaching_no_loss_warns(tmp_path):
    """A node no loss depends on is never trained: that is a GraphnetWarning, located."""
    path = write_spec(tmp_path, spec_text(SPARE))
    with pytest.warns(graphnet.GraphnetWarning) as record:
        graphnet.load_spec(path)
    messages = [str(w.message) for w in record if issubclass(w.category, graphnet.GraphnetWarning)]
    assert messages == [f"{path}:6: nodes[1]: node 'spare' reaches no loss: it is never trained"]


def test_node_in_outputs_does_not_warn(tmp_path):
    """A node listed in `outputs` is wanted even without a loss: no warning."""
    path = write_spec(tmp_path, spec_text(SPARE, extra="outputs: [out, spare]\n"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", graphnet.GraphnetWarning)
        graphnet.load_spec(path)


def test_cli_prints_the_unused_node_warning(tmp_path):
    """`graphnet validate` prints `warning:` for a node that reaches no loss, and still succeeds."""
    path = write_spec(tmp_path, spec_text(SPARE))
    result = invoke("validate", str(path))
    assert result.exit_code == 0, result.output
    assert f"warning: {path}:6: nodes[1]: node 'spare' reaches no loss" in result.stderr
    assert result.stdout.startswith("ok")


# -- scale -------------------------------------------------------------------------------------


def chain(length: int) -> dict[str, Any]:
    """A chain of ``length`` nodes alternating dense and relu, written last node first."""
    nodes = []
    previous = "x"
    for i in range(length):
        name = f"n{i}"
        if i % 2 == 0:
            nodes.append({"name": name, "type": "dense", "inputs": [previous], "units": 2})
        else:
            nodes.append({"name": name, "type": "relu", "inputs": [previous]})
        previous = name
    nodes.append({"name": "out", "type": "dense", "inputs": [previous], "units": 1})
    return {
        "inputs": {"x": {"shape": [2]}, "y": {"shape": [1]}},
        "nodes": nodes[::-1],
        "loss": {"type": "mse", "inputs": ["out", "y"]},
    }


def test_a_ten_thousand_node_chain_validates(tmp_path):
    """Nothing is recursive: a 10,000-node chain validates, orders, and runs a forward pass.

    JSON is read by the YAML reader too (for the lines), so this covers both readers.
    """
    graph = load_graph(write_spec(tmp_path, json.dumps(chain(10_000)), "chain.json"))
    spec = graph.spec
    assert len(graph.nodes) == 10_001
    assert [n.name for n in graph.nodes[:3]] == ["n0", "n1", "n2"]
    assert graph.nodes[-1].name == "out"
    assert graph.shapes["out"] == (1,)
    prediction = graphnet.build(spec).predict({"x": np.ones((3, 2))})["out"]
    assert prediction.shape == (3, 1)
