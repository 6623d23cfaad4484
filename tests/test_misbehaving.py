"""Misbehaving plugins are named, never silent: each misbehaviour below is loaded as a plugin
file with `--plugin`, and the run stops with exit 1 and a message naming the node (or loss,
optimizer), the method and the plugin's file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from graphnet.cli import cli

SPEC = {
    "seed": 0,
    "data": {"source": "synthetic", "function": "product", "samples": 16},
    "inputs": {"x": {"shape": [2]}, "y": {"shape": [1]}},
    "nodes": [
        {"name": "bad", "type": "misbehaving", "inputs": ["x"]},
        {"name": "h", "type": "dense", "inputs": ["bad"], "units": 3},
        {"name": "odd", "type": "misbehaving_too", "inputs": ["h"]},
        {"name": "out", "type": "dense", "inputs": ["odd"], "units": 1},
    ],
    "loss": {"type": "mse", "inputs": ["out", "y"]},
    "train": {"epochs": 2, "batch_size": 8, "optimizer": {"type": "sgd", "lr": 0.01}},
}

LAYERS = """
import numpy as np
import graphnet


class Good(graphnet.Layer):
    def forward(self, params, inputs, training):
        return inputs[0] * 1.0, None

    def backward(self, params, cache, grad):
        return [grad], {{}}


class Misbehaving(Good):
    type = "misbehaving"
{bad}

class MisbehavingToo(Good):
    type = "misbehaving_too"
{too}

@graphnet.hookimpl
def graphnet_layers():
    return [Misbehaving, MisbehavingToo]
"""

WRITES_ITS_INPUT = """
    def forward(self, params, inputs, training):
        inputs[0][0, 0] = 0.0  # into the data set
        return inputs[0] * 1.0, None
"""
WRITES_A_NODE_OUTPUT = """
    def forward(self, params, inputs, training):
        inputs[0] *= 2.0  # into the output of node h
        return inputs[0] * 1.0, None
"""
INIT_PARAMS_LIST = """
    def init_params(self, input_shapes, rng):
        return [np.zeros(2)]
"""
BACKWARD_RAISES = """
    def backward(self, params, cache, grad):
        raise ValueError("no gradient today")
"""


def run(
    tmp_path: Path, bad: str = "", too: str = "", command: str = "run"
) -> tuple[int, str, Path]:
    plugin = tmp_path / "misbehaving.py"
    plugin.write_text(
        LAYERS.format(bad=bad or "    pass\n", too=too or "    pass\n"), encoding="utf-8"
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False), encoding="utf-8")
    args = [command, str(spec), "--plugin", str(plugin)]
    if command == "run":
        args += ["--out", str(tmp_path / "run")]
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.output, plugin


@pytest.mark.parametrize(
    ("bad", "too", "node", "expected"),
    [
        (
            WRITES_ITS_INPUT,
            "",
            "'bad' (misbehaving)",
            "read-only|changed its input 0 in place",
        ),
        (
            "",
            WRITES_A_NODE_OUTPUT,
            "'odd' (misbehaving_too)",
            "forward changed its input 0 in place",
        ),
        (
            INIT_PARAMS_LIST,
            "",
            "'bad' (misbehaving)",
            "init_params returned list, not a dict of arrays",
        ),
        (
            "",
            BACKWARD_RAISES,
            "'odd' (misbehaving_too)",
            "backward failed: ValueError: no gradient today",
        ),
    ],
    ids=["writes-the-data", "writes-a-node-output", "init-params-list", "backward-raises"],
)
def test_a_misbehaving_layer_is_named_with_its_method_and_file(tmp_path, bad, too, node, expected):
    """The run fails with exit 1 at once; the message names the node, the method and the
    plugin's file; the data set was never silently changed."""
    status, output, plugin = run(tmp_path, bad, too)
    assert status == 1, output
    assert f"node {node}" in output and re.search(expected, output), output
    assert "warning" not in output  # no stray word about loss.png before the error
    assert f"(plugin {plugin})" in output


def test_gradcheck_names_a_plugin_whose_backward_raises(tmp_path):
    """`graphnet gradcheck` reports an exception raised in a plugin's backward as that node's
    failure, not as an internal error."""
    status, output, _ = run(tmp_path, too=BACKWARD_RAISES, command="gradcheck")
    assert status == 1, output
    assert "internal error" not in output
    assert "node 'odd' (misbehaving_too)" in output and "no gradient today" in output


OPTIMIZERS = """
import graphnet


class Rebinds(graphnet.Optimizer):
    type = "rebinds"

    def step(self, params, grads, state):
        for key, p in params.items():
            p = p - 0.1 * grads[key]  # a new array, bound to a local name only


class Replaces(graphnet.Optimizer):
    type = "replaces"

    def step(self, params, grads, state):
        for key in list(params):
            params[key] = params[key] - 0.1 * grads[key]


@graphnet.hookimpl
def graphnet_optimizers():
    return [Rebinds, Replaces]
"""


@pytest.mark.parametrize(
    ("optimizer", "expected"),
    [("rebinds", "wrote into none of the arrays"), ("replaces", "replaced params['")],
)
def test_an_optimizer_that_does_not_update_in_place_is_named(tmp_path, optimizer, expected):
    """An optimizer whose step leaves the network's arrays as they were (it rebinds a name, or
    puts new arrays into the dict) stops the run at its first step, naming it; never 30
    epochs at a flat loss with exit 0."""
    plugin = tmp_path / "optimizers.py"
    plugin.write_text(OPTIMIZERS, encoding="utf-8")
    spec = {
        **SPEC,
        "nodes": [SPEC["nodes"][1] | {"inputs": ["x"]}, SPEC["nodes"][3] | {"inputs": ["h"]}],
    }
    spec["train"] = {**SPEC["train"], "optimizer": {"type": optimizer}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["run", str(path), "--plugin", str(plugin), "--out", str(tmp_path / "run")]
    )
    assert result.exit_code == 1, result.output
    assert f"optimizer {optimizer!r}: step" in result.output and expected in result.output
    assert f"(plugin {plugin})" in result.output


FLOAT64_ONLY = """
    def forward(self, params, inputs, training):
        return inputs[0].astype("float64"), None  # right in float64, wrong in a float32 run
"""


def test_gradcheck_checks_the_specs_own_dtype_too(tmp_path):
    """A layer that breaks float32 passes finite differences in float64, but `gradcheck` on a
    float32 spec also takes a training step in float32 and names it (as `run` would)."""
    status, output, plugin = run(tmp_path, bad=FLOAT64_ONLY, command="gradcheck")
    assert status == 0, output  # the spec is float64: nothing wrong
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec.read_text(encoding="utf-8") + "dtype: float32\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["gradcheck", str(spec), "--plugin", str(plugin)])
    assert result.exit_code == 1, result.output
    assert "node 'bad' (misbehaving): forward returned float64" in result.output
