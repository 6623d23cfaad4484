"""The spec format: YAML and JSON, strict validation, located errors, safe loading, ``--set``.

Every error test checks what a user reads: the file and line (or the ``--set`` item), the path
inside the spec, and a close name where there is one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import write_spec

import graphnet
from graphnet.api import load_graph

# Line numbers below refer to this text: name 1, data 2, inputs 3, x 4, y 5, nodes 6, hidden 7,
# act 8, out 9, loss 10, train 11, epochs 12, optimizer 13.
SPEC = """\
name: net
data: {source: synthetic, function: product, samples: 20}
inputs:
  x: {shape: [2]}
  y: {shape: [1]}
nodes:
  - {name: hidden, type: dense, inputs: [x], units: 5}
  - {name: act, type: relu, inputs: [hidden]}
  - {name: out, type: dense, inputs: [act], units: 1}
loss: {type: mse, inputs: [out, y]}
train:
  epochs: 2
  optimizer: {type: sgd, lr: 0.05}
"""

SPEC_DATA: dict[str, Any] = {
    "name": "net",
    "data": {"source": "synthetic", "function": "product", "samples": 20},
    "inputs": {"x": {"shape": [2]}, "y": {"shape": [1]}},
    "nodes": [
        {"name": "hidden", "type": "dense", "inputs": ["x"], "units": 5},
        {"name": "act", "type": "relu", "inputs": ["hidden"]},
        {"name": "out", "type": "dense", "inputs": ["act"], "units": 1},
    ],
    "loss": {"type": "mse", "inputs": ["out", "y"]},
    "train": {"epochs": 2, "optimizer": {"type": "sgd", "lr": 0.05}},
}


def edited(old: str, new: str) -> str:
    """``SPEC`` with one exact piece replaced (the piece must be there)."""
    assert SPEC.count(old) == 1, old
    return SPEC.replace(old, new)


def spec_error(path: Path, overrides: Any = None) -> str:
    """The message of the SpecError that loading ``path`` raises."""
    with pytest.raises(graphnet.SpecError) as info:
        graphnet.load_spec(path, overrides)
    return str(info.value)


# -- one spec, two syntaxes --------------------------------------------------------------------


def test_yaml_and_json_forms_resolve_to_the_same_spec(tmp_path):
    """A spec can be written as YAML or JSON: both load to the same resolved spec."""
    assert yaml.safe_load(SPEC) == SPEC_DATA  # the two forms below really say the same
    from_yaml = graphnet.load_spec(write_spec(tmp_path, SPEC, "spec.yaml"))
    from_json = graphnet.load_spec(
        write_spec(tmp_path, json.dumps(SPEC_DATA, indent=2), "spec.json")
    )
    assert from_yaml.to_dict() == from_json.to_dict()
    assert from_json.to_dict()["nodes"][0]["units"] == 5


def test_json_spec_errors_carry_lines_too(tmp_path):
    """A JSON spec's errors name the line of the offending value, as a YAML spec's do."""
    data = json.loads(json.dumps(SPEC_DATA))
    data["train"]["epochs"] = -1
    path = write_spec(tmp_path, json.dumps(data, indent=2), "spec.json")
    text = json.dumps(data, indent=2).splitlines()
    line = next(i for i, row in enumerate(text, 1) if '"epochs": -1' in row)
    assert spec_error(path).startswith(f"{path}:{line}: train.epochs: ")


def test_resolved_spec_fills_in_defaults(tmp_path):
    """Left-out values are filled in: name from the file, seed 0, float64 and plugin defaults."""
    text = edited("name: net\n", "").replace("  epochs: 2\n", "")
    resolved = graphnet.load_spec(write_spec(tmp_path, text, "my-net.yaml")).to_dict()
    assert resolved["name"] == "my-net"
    assert resolved["seed"] == 0
    assert resolved["dtype"] == "float64"
    assert resolved["nodes"][0] == {
        "name": "hidden",
        "type": "dense",
        "inputs": ["x"],
        "units": 5,
        "bias": True,
        "init": "glorot_uniform",
    }
    assert resolved["loss"] == [{"type": "mse", "inputs": ["out", "y"], "weight": 1.0}]
    assert resolved["train"]["optimizer"]["momentum"] == 0.0
    assert resolved["train"]["checkpoint_every"] == 30
    assert resolved["data"]["validation"] == 0.0


def test_a_single_input_name_may_be_written_without_a_list(tmp_path):
    """`inputs: x` means `inputs: [x]`; `outputs: out` means `outputs: [out]`."""
    text = edited("inputs: [x], units: 5", "inputs: x, units: 5") + "outputs: out\n"
    resolved = graphnet.load_spec(write_spec(tmp_path, text)).to_dict()
    assert resolved["nodes"][0]["inputs"] == ["x"]
    assert resolved["outputs"] == ["out"]


@pytest.mark.parametrize(
    ("layer", "activation", "loss", "optimizer"),
    [("Dense", "ReLU", "MSE", "SGD"), ("DENSE", "relu", "Mse", "sgd")],
)
def test_type_names_are_case_insensitive(tmp_path, layer, activation, loss, optimizer):
    """`type: Dense` and `type: ReLU` work as Keras users write them; the saved spec is lower case."""
    text = (
        SPEC.replace("type: dense", f"type: {layer}")
        .replace("type: relu", f"type: {activation}")
        .replace("type: mse", f"type: {loss}")
        .replace("type: sgd", f"type: {optimizer}")
    )
    resolved = graphnet.load_spec(write_spec(tmp_path, text)).to_dict()
    assert [node["type"] for node in resolved["nodes"]] == ["dense", "relu", "dense"]
    assert resolved["loss"][0]["type"] == "mse"
    assert resolved["train"]["optimizer"]["type"] == "sgd"


def test_scientific_notation_is_a_number(tmp_path):
    """`lr: 1e-4` is the number 0.0001 (YAML 1.2), not the string '1e-4'."""
    spec = graphnet.load_spec(write_spec(tmp_path, edited("lr: 0.05", "lr: 1e-4")))
    assert spec.to_dict()["train"]["optimizer"]["lr"] == 1e-4


# -- unknown, missing and mistyped keys --------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "where", "expected"),
    [
        (
            "train:\n",
            "trian: {}\ntrain:\n",
            "11: trian",
            "unknown key 'trian' (did you mean 'train'?)",
        ),
        ("  epochs: 2\n", "  epoch: 2\n", "12: train.epoch", "(did you mean 'epochs'?)"),
        ("{shape: [2]}", "{shape: [2], shap: 1}", "4: inputs.x.shap", "did you mean 'shape'?"),
        (
            "units: 5}",
            "units: 5, unit: 3}",
            "7: nodes[0].unit",
            "unknown option 'unit' for layer type 'dense' (did you mean 'units'",
        ),
        (
            "lr: 0.05}",
            "lr: 0.05, lrr: 1}",
            "13: train.optimizer.lrr",
            "unknown option 'lrr' for optimizer type 'sgd' (did you mean 'lr'?)",
        ),
        (
            "samples: 20}",
            "samples: 20, sample: 3}",
            "2: data.sample",
            "(did you mean 'samples'?)",
        ),
        (
            "inputs: [out, y]}",
            "inputs: [out, y], wieght: 2}",
            "10: loss[0].wieght",
            "(did you mean 'weight'?)",
        ),
    ],
    ids=["top", "train", "inputs.x", "node-option", "optimizer-option", "data-option", "loss"],
)
def test_unknown_keys_are_rejected_at_every_level(tmp_path, old, new, where, expected):
    """A misspelt key is an error naming file:line, its spec path and the key it resembles."""
    path = write_spec(tmp_path, edited(old, new))
    message = spec_error(path)
    assert message.startswith(f"{path}:{where}: ")
    assert expected in message


def test_unknown_node_option_lists_the_plugins_options(tmp_path):
    """An option the layer does not take is named along with the options it does take."""
    message = spec_error(write_spec(tmp_path, edited("type: relu,", "type: relu, units: 3,")))
    assert "nodes[1].units: unknown option 'units' for layer type 'relu'" in message
    assert "its options: none" in message


@pytest.mark.parametrize(
    ("old", "new", "where", "expected"),
    [
        (", units: 5}", "}", "7: nodes[0]", "missing required key 'units'"),
        ("inputs: [hidden]", "input: [hidden]", "8: nodes[1]", "'inputs' (you wrote 'input'"),
        ("  x: {shape: [2]}", "  x: {}", "4: inputs.x", "missing required key 'shape'"),
        ("function: product, ", "", "2: data", "missing required key 'function'"),
        ("{type: sgd, lr: 0.05}", "{lr: 0.05}", "13: train.optimizer", "key 'type'"),
    ],
)
def test_missing_keys_are_named(tmp_path, old, new, where, expected):
    """A required key that is left out is named with the section that lacks it."""
    path = write_spec(tmp_path, edited(old, new))
    message = spec_error(path)
    assert message.startswith(f"{path}:{where}: ")
    assert expected in message


def test_missing_top_level_section_is_named(tmp_path):
    """A spec without `nodes` says so (and spots `node` as the likely typo)."""
    message = spec_error(write_spec(tmp_path, SPEC.replace("nodes:", "node:")))
    assert "missing required key 'nodes' (you wrote 'node'" in message
    assert "unknown key 'node' (did you mean 'nodes'?)" in message


@pytest.mark.parametrize(
    ("old", "new", "where", "expected"),
    [
        ("units: 5}", "units: true}", "7: nodes[0].units", "valid integer, got True"),
        ("units: 5}", 'units: "5"}', "7: nodes[0].units", "valid integer, got '5'"),
        ("units: 5}", "units: 2.5}", "7: nodes[0].units", "valid integer"),
        ("epochs: 2", "epochs: '2'", "12: train.epochs", "valid integer, got '2'"),
        ("lr: 0.05}", "lr: fast}", "13: train.optimizer.lr", "valid number, got 'fast'"),
        ("{shape: [2]}", "{shape: 2}", "4: inputs.x.shape", "valid list"),
        ("inputs: [x]", "inputs: [1]", "7: nodes[0].inputs[0]", "valid string"),
        ("epochs: 2", "epochs: 2\n  shuffle: 'yes'", "13: train.shuffle", "valid boolean"),
    ],
)
def test_types_are_strict(tmp_path, old, new, where, expected):
    """Values are not coerced: `units: true` or `units: "5"` is an error, not 1 or 5."""
    path = write_spec(tmp_path, edited(old, new))
    message = spec_error(path)
    assert message.startswith(f"{path}:{where}: ")
    assert expected in message


@pytest.mark.parametrize(
    ("old", "new", "where", "expected"),
    [
        ("units: 5}", "units: -5}", "7: nodes[0].units", "greater than or equal to 1, got -5"),
        ("units: 5}", "units: 0}", "7: nodes[0].units", "greater than or equal to 1, got 0"),
        ("epochs: 2", "epochs: -1", "12: train.epochs", "greater than or equal to 0, got -1"),
        ("epochs: 2", "epochs: 2\n  batch_size: 0", "13: train.batch_size", "got 0"),
        ("lr: 0.05}", "lr: -0.1}", "13: train.optimizer.lr", "greater than 0, got -0.1"),
        ("samples: 20}", "samples: 20, validation: 1.0}", "2: data.validation", "less than 1"),
        ("name: net", "name: net\nseed: -1", "2: seed", "greater than or equal to 0"),
        ("name: net", "name: net\ndtype: float16", "2: dtype", "'float64' or 'float32'"),
        ("{shape: [2]}", "{shape: [0]}", "4: inputs.x.shape[0]", "greater than or equal to 1"),
        ("inputs: [x]", "inputs: []", "7: nodes[0].inputs", "at least 1 item"),
        ("units: 5}", "units: 5, init: gaussian}", "7: nodes[0].init", "'glorot_uniform'"),
    ],
)
def test_out_of_range_values_are_rejected(tmp_path, old, new, where, expected):
    """Negative sizes, a negative learning rate or an unknown choice are located errors."""
    path = write_spec(tmp_path, edited(old, new))
    message = spec_error(path)
    assert message.startswith(f"{path}:{where}: ")
    assert expected in message


@pytest.mark.parametrize(
    ("old", "new", "where", "bad"),
    [
        ("name: hidden", "name: 'hid den'", "7: nodes[0].name", "'hid den'"),
        ("name: hidden", "name: 1st", "7: nodes[0].name", "'1st'"),
        ("name: hidden", "name: ''", "7: nodes[0].name", "''"),
        ("  x: {shape: [2]}", "  'x.y': {shape: [2]}", "4: inputs.x.y", "'x.y'"),
    ],
)
def test_bad_names_are_rejected(tmp_path, old, new, where, bad):
    """Node and input names are identifiers (letters, digits, '_', '-'); the rule is stated."""
    path = write_spec(tmp_path, edited(old, new))
    message = spec_error(path)
    assert f"{where}" in message
    assert f"{bad} is not a valid name: a name starts with a letter or '_'" in message


def test_several_errors_are_reported_together(tmp_path):
    """Structural errors are all reported at once, each on its own located line."""
    path = write_spec(tmp_path, edited("  epochs: 2\n", "  epochs: -1\n  batch_size: 0\n"))
    lines = spec_error(path).splitlines()
    assert lines[0].startswith(f"{path}:12: train.epochs: ")
    assert lines[1].startswith(f"{path}:13: train.batch_size: ")


# -- reading the file --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        (SPEC + "train: {epochs: 3}\n", 14, "train"),
        (edited("  epochs: 2\n", "  epochs: 2\n  epochs: 3\n"), 13, "train.epochs"),
        (edited("units: 5}", "units: 5, units: 6}"), 7, "nodes[0].units"),
    ],
    ids=["top", "nested", "flow-mapping"],
)
def test_duplicate_yaml_keys_are_rejected_with_the_line(tmp_path, text, line, key):
    """A key given twice is an error (YAML would silently keep the last one)."""
    path = write_spec(tmp_path, text)
    message = spec_error(path)
    assert message.startswith(f"{path}:{line}: {key}: duplicate key")
    assert "first given on line" in message


def test_duplicate_json_keys_are_rejected_with_the_line(tmp_path):
    """JSON's silent last-one-wins for a repeated key is an error too, with the line."""
    text = '{\n  "name": "a",\n  "seed": 1,\n  "name": "b"\n}\n'
    path = write_spec(tmp_path, text, "spec.json")
    message = spec_error(path)
    assert "duplicate key 'name'" in message
    assert message.startswith(f"{path}:4")


@pytest.mark.parametrize(
    ("old", "new", "position"),
    [
        ("inputs: [x], units: 5}", "inputs: [x, units: 5}", "7:"),
        ("  epochs: 2\n", "  epochs: 2\n    lr: 3\n", "13:7"),
        ("  x: {shape: [2]}\n", "  x: {shape: [2]}\n\ty: 1\n", "5:"),
        ("name: net", "name: 'net", ""),
    ],
    ids=["flow-sequence", "indentation", "tab", "unclosed-quote"],
)
def test_malformed_yaml_gives_line_and_column(tmp_path, old, new, position):
    """YAML that does not parse is reported at file:line:column, never as a traceback."""
    path = write_spec(tmp_path, edited(old, new))
    message = spec_error(path)
    assert "not valid YAML" in message
    location = message.split(": not valid YAML")[0]
    line, column = location.removeprefix(f"{path}:").split(":")
    assert line.isdigit()
    assert column.isdigit()
    assert f"{line}:{column}".startswith(position)


def test_malformed_json_gives_line_and_column(tmp_path):
    """JSON that does not parse is reported at file:line:column."""
    text = json.dumps(SPEC_DATA, indent=2).replace('"units": 5', '"units" 5')
    line = next(i for i, row in enumerate(text.splitlines(), 1) if '"units" 5' in row)
    path = write_spec(tmp_path, text, "spec.json")
    message = spec_error(path)
    assert message.startswith(f"{path}:{line}:")
    assert "not valid JSON: Expecting ':' delimiter" in message


@pytest.mark.parametrize(
    ("text", "position", "bracket"),
    [
        ('{\n  "name": "a",\n  "seed": 1,\n}\n', "3:12", "}"),
        ('{\n  "inputs": {"x": {"shape": [2,]}}\n}\n', "2:31", "]"),
    ],
    ids=["object", "array"],
)
def test_json_trailing_comma_is_an_error_with_its_line(tmp_path, text, position, bracket):
    """A trailing comma in a .json spec is an error pointing at the comma itself."""
    path = write_spec(tmp_path, text, "spec.json")
    assert (
        spec_error(path) == f"{path}:{position}: not valid JSON: trailing comma before '{bracket}'"
    )


def test_json_is_strict_about_nan(tmp_path):
    """A .json spec is read by a strict JSON parser: NaN is not JSON."""
    path = write_spec(tmp_path, '{"seed": NaN}', "spec.json")
    assert "NaN is not valid JSON" in spec_error(path)


@pytest.mark.parametrize("text", ["", "\n  \n", "# only a comment\n", "null\n"])
def test_empty_spec_file(tmp_path, text):
    """An empty file (or only comments) says it is empty."""
    path = write_spec(tmp_path, text)
    assert spec_error(path).startswith(f"{path}: the spec file is empty")


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [
        ("spec.yaml", "- name: net\n- seed: 0\n", "a list"),
        ("spec.yaml", "just words\n", "a str"),
        ("spec.json", "[1, 2]", "a list"),
    ],
)
def test_spec_must_be_a_mapping(tmp_path, name, text, kind):
    """A file that holds a list (or a scalar) instead of a mapping is rejected as such."""
    path = write_spec(tmp_path, text, name)
    message = spec_error(path)
    assert message.startswith(f"{path}:1: a spec must be a mapping")
    assert message.endswith(f"not {kind}")


@pytest.mark.parametrize(
    "text",
    [
        '!!python/object/apply:os.system ["touch {marker}"]\n',
        SPEC + 'seed: !!python/object/apply:os.system ["touch {marker}"]\n',
        SPEC.replace("name: net", 'name: !!python/object/apply:os.system ["touch {marker}"]'),
        SPEC + "seed: !!python/object/new:os.system [touch {marker}]\n",
        SPEC + "seed: !!python/name:os.system\n",
    ],
    ids=["document", "value", "first-key", "object-new", "name"],
)
def test_python_tags_are_rejected_and_run_nothing(tmp_path, text):
    """Loading a spec never runs code: Python tags are an error and the command never runs."""
    marker = tmp_path / "marker"
    path = write_spec(tmp_path, text.replace("{marker}", str(marker)))
    message = spec_error(path)
    assert "not valid YAML: could not determine a constructor for the tag" in message
    assert message.startswith(f"{path}:")
    assert not marker.exists()


def test_missing_spec_file(tmp_path):
    """A path that does not exist is named."""
    path = tmp_path / "nope.yaml"
    assert spec_error(path) == f"{path}: spec file not found"


def test_spec_path_that_is_a_folder(tmp_path):
    """A folder given as the spec is named as such."""
    assert spec_error(tmp_path) == f"{tmp_path}: is a folder, not a spec file"


def test_spec_file_that_is_not_utf8(tmp_path):
    """A binary file is reported as not being text."""
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    assert spec_error(path).startswith(f"{path}: not UTF-8 text")


# -- --set overrides ---------------------------------------------------------------------------


def test_set_overrides_values_by_dotted_path(tmp_path):
    """`--set train.optimizer.lr=0.1` replaces that value before validation."""
    spec = graphnet.load_spec(
        write_spec(tmp_path, SPEC), ["train.optimizer.lr=0.1", "train.epochs=7"]
    )
    resolved = spec.to_dict()
    assert resolved["train"]["optimizer"]["lr"] == 0.1
    assert resolved["train"]["epochs"] == 7


def test_set_addresses_nodes_by_name(tmp_path):
    """`--set nodes.hidden.units=8` changes the node named hidden, wherever it is in the list."""
    overrides = ["nodes.out.units=3", "nodes.hidden.units=8", "inputs.y.shape=[3]"]
    graph = load_graph(write_spec(tmp_path, SPEC), overrides)
    nodes = graph.spec.to_dict()["nodes"]
    assert (nodes[0]["units"], nodes[2]["units"]) == (8, 3)
    assert graph.shapes["out"] == (3,)


def test_set_addresses_list_items_by_index(tmp_path):
    """A list item can also be addressed by its index: `--set nodes.0.units=4`."""
    spec = graphnet.load_spec(write_spec(tmp_path, SPEC), ["nodes.0.units=4"])
    assert spec.to_dict()["nodes"][0]["units"] == 4


@pytest.mark.parametrize(
    ("item", "key", "value"),
    [
        ("train.epochs=3", "epochs", 3),
        ("train.optimizer.lr=1e-3", "lr", 1e-3),
        ("train.optimizer.lr=2.5E+2", "lr", 250.0),
        ("train.shuffle=false", "shuffle", False),
        ("train.batch_size=null", "batch_size", None),
        ("train.batch_size=", "batch_size", None),
        ("train.batch_size= 16", "batch_size", 16),
        ("train.metrics=[mae]", "metrics", ["mae"]),
    ],
)
def test_set_value_is_read_as_a_yaml_scalar(tmp_path, item, key, value):
    """The text after `=` is read as YAML: numbers, booleans and null become what they say."""
    train = graphnet.load_spec(write_spec(tmp_path, SPEC), [item]).to_dict()["train"]
    actual = train["optimizer"][key] if key == "lr" else train[key]
    assert actual == value
    assert type(actual) is type(value)


def test_set_fills_a_section_the_file_leaves_out(tmp_path):
    """`--set train.epochs=3` works on a spec that has no `train:` section at all."""
    text = SPEC.split("train:")[0]
    spec = graphnet.load_spec(write_spec(tmp_path, text), ["train.epochs=3"])
    assert spec.train.epochs == 3


def test_overrides_accept_a_mapping_in_python(tmp_path):
    """`load_spec(path, {"train.epochs": 3})` is the Python form of `--set`."""
    spec = graphnet.load_spec(
        write_spec(tmp_path, SPEC), {"train.epochs": 3, "nodes.hidden.units": 8}
    )
    assert spec.train.epochs == 3
    assert spec.to_dict()["nodes"][0]["units"] == 8
    assert spec.where(("train", "epochs")) == "--set train.epochs=3: train.epochs"


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (
            "train.optimizer.lrr=0.1",
            "--set train.optimizer.lrr=0.1: train.optimizer.lrr: unknown option 'lrr' "
            "for optimizer type 'sgd' (did you mean 'lr'?)",
        ),
        (
            "trian.epochs=3",
            "--set trian.epochs=3: trian: unknown key 'trian' (did you mean 'train'?)",
        ),
        ("train.epoch=3", "--set train.epoch=3: train.epoch: unknown key 'epoch'"),
        (
            "nodes.hidden.units=true",
            "--set nodes.hidden.units=true: nodes[0].units: input should be a valid integer, "
            "got True",
        ),
        ("nodes.hidden.units=-1", "--set nodes.hidden.units=-1: nodes[0].units: input should be"),
        (
            "nodes.hiden.units=8",
            "--set nodes.hiden.units=8: nodes has no node named 'hiden' (did you mean 'hidden'?)",
        ),
        ("nodes.9.units=8", "--set nodes.9.units=8: nodes has no item 9"),
        ("train.epochs.x=1", "--set train.epochs.x=1: train.epochs is a value, not a section"),
        ("train.epochs", "--set takes KEY=VALUE, e.g. train.epochs=10; got 'train.epochs'"),
        ("=3", "--set takes KEY=VALUE"),
        ("train.epochs=[1", "--set train.epochs=[1: the value is not a valid YAML scalar"),
    ],
)
def test_set_errors_name_the_override(tmp_path, item, expected):
    """A bad `--set` is located at `--set KEY=VALUE`, not at a line of the file."""
    message = spec_error(write_spec(tmp_path, SPEC), [item])
    assert message.startswith(expected)
    assert "spec.yaml:" not in message
