"""`graphnet schema`: a JSON Schema (draft 2020-12) of the spec format for editors and linters.

Each node's `type` (a loss's and an optimizer's `type`, the data's `source`) selects that
plugin's own options, with their descriptions, defaults and enums, and refuses any other key.
Every spec in specs/ validates; what graphnet refuses for an unknown key or type, it refuses.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import SEED, SHIPPED_SPECS, invoke

import graphnet
from graphnet.registry import get_registry
from graphnet.schema import spec_schema
from graphnet.specfile import read

PLUGIN = '''
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

import graphnet


class Shift(graphnet.Layer):
    """y = x + offset."""

    type = "Shift"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        offset: float = Field(0.0, description="Added to every element.")
        mode: Literal["add", "sub"] = Field("add", description="Add or subtract.")

    def forward(self, params, inputs, training):
        return inputs[0] + self.options.offset, None

    def backward(self, params, cache, grad):
        return [grad], {}


@graphnet.hookimpl
def graphnet_layers():
    return [Shift]
'''


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = spec_schema(get_registry())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def seed() -> dict[str, Any]:
    data, _ = read(SEED)
    return data


def errors(validator: jsonschema.Draft202012Validator, data: Any) -> list[str]:
    return [e.message for e in validator.iter_errors(data)]


def test_the_schema_is_valid_draft_2020_12_json():
    """`graphnet schema` prints JSON that is itself a valid draft 2020-12 schema."""
    result = invoke("schema")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema == spec_schema(get_registry())


@pytest.mark.parametrize("spec", SHIPPED_SPECS, ids=[p.stem for p in SHIPPED_SPECS])
def test_every_spec_validates(validator, spec):
    """Every example spec in specs/ is valid against the schema."""
    data, _ = read(spec)
    assert errors(validator, data) == []


def test_types_are_case_insensitive_as_in_graphnet(validator):
    """`Dense`, `ReLU`, `MSE`, `SGD` are accepted, as graphnet accepts them, options included."""
    data = seed()
    data["nodes"][0]["type"] = "Dense"
    data["nodes"][1]["type"] = "ReLU"
    data["loss"]["type"] = "MSE"
    data["train"]["optimizer"]["type"] = "SGD"
    data["train"]["metrics"] = ["MAE"]
    assert errors(validator, data) == []
    data["nodes"][0]["unitz"] = 3
    assert errors(validator, data) == [
        "Additional properties are not allowed ('unitz' was unexpected)"
    ]


def set_path(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return data


BAD = {
    "unknown node option": (("nodes", 0, "unitz"), 3),
    "unknown layer type": (("nodes", 1, "type"), "rellu"),
    "option of another layer": (("nodes", 1, "units"), 3),
    "option out of its enum": (("nodes", 0, "init"), "xavier"),
    "option of the wrong type": (("nodes", 0, "units"), "five"),
    "option out of range": (("nodes", 0, "units"), 0),
    "unknown loss type": (("loss", "type"), "msq"),
    "unknown loss option": (("loss", "reduction"), "sum"),
    "unknown optimizer type": (("train", "optimizer", "type"), "adagrad"),
    "unknown optimizer option": (("train", "optimizer", "betas"), [0.9, 0.99]),
    "unknown data source": (("data", "source"), "parquet"),
    "unknown data option": (("data", "rows"), 10),
    "data option out of its enum": (("data", "function"), "sine"),
    "unknown metric": (("train", "metrics"), ["msle"]),
    "unknown top-level key": (("trian",), {"epochs": 3}),
    "unknown train key": (("train", "epoch"), 3),
    "bad input name": (("inputs", "2x"), {"shape": [1]}),
    "bad dtype": (("dtype",), "float16"),
    "unknown schedule type": (("train", "lr_schedule"), {"type": "linear"}),
    "unknown schedule option": (("train", "lr_schedule"), {"type": "step", "every": 2, "gama": 1}),
    "patience below 1": (("train", "early_stopping"), {"patience": 0}),
    "unknown early stopping key": (("train", "early_stopping"), {"patiense": 3}),
    "clip_grad_norm of 0": (("train", "clip_grad_norm"), 0),
}


def test_training_features_fit_the_schema(validator):
    """A schedule with its options inline, early stopping and clipping pass the schema."""
    data = seed()
    data["train"]["lr_schedule"] = {"type": "warmup_cosine", "warmup": 5, "epochs": 100}
    data["train"]["early_stopping"] = {"monitor": "loss", "mode": "min", "patience": 3}
    data["train"]["clip_grad_norm"] = 1.0
    assert errors(validator, data) == []


@pytest.mark.parametrize("case", list(BAD))
def test_bad_specs_fail_the_schema_and_graphnet_alike(validator, tmp_path, case):
    """What the schema refuses, `graphnet validate` refuses too (exit 2)."""
    path, value = BAD[case]
    data = set_path(copy.deepcopy(seed()), path, value)
    assert errors(validator, data), case
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps(data), encoding="utf-8")
    assert invoke("validate", spec).exit_code == 2


def test_a_missing_required_option_fails(validator):
    """`dense` needs `units`; `csv` needs `path` and `columns`."""
    data = seed()
    del data["nodes"][0]["units"]
    assert errors(validator, data) == ["'units' is a required property"]
    data = seed()
    data["data"] = {"source": "csv", "path": "data.csv"}
    (error,) = validator.iter_errors(data)  # `data` is a data source or null
    assert "'columns' is a required property" in [e.message for e in error.context]


def test_single_and_list_forms_both_validate(validator):
    """`inputs: x` or `[x]`, one `loss` or a list, `outputs: out` or `[out]`."""
    data = seed()
    data["nodes"][0]["inputs"] = "x"
    data["loss"] = [data["loss"], {"type": "mse", "inputs": ["out", "y"], "weight": 0.5}]
    data["outputs"] = "out"
    assert errors(validator, data) == []


def test_plugin_options_carry_their_descriptions_defaults_and_enums():
    """Editors show an option's description and default, and complete its enum values."""
    schema = spec_schema(get_registry())
    branches = {
        b["if"]["properties"]["type"]["pattern"]: b["then"]
        for b in schema["$defs"]["NodeSpec"]["allOf"]
    }
    dense = branches["^[dD][eE][nN][sS][eE]$"]["properties"]
    assert dense["init"]["default"] == "glorot_uniform"
    assert "he_uniform" in dense["init"]["enum"]
    assert dense["units"]["description"].startswith("Number of output units")
    assert dense["units"]["minimum"] == 1
    optimizers = {
        b["if"]["properties"]["type"]["pattern"]: b["then"]
        for b in schema["$defs"]["OptimizerSpec"]["allOf"]
    }
    assert optimizers["^[aA][dD][aA][mM]$"]["properties"]["lr"]["default"] == 0.001
    layer_types = schema["$defs"]["NodeSpec"]["properties"]["type"]["anyOf"][0]["enum"]
    assert {"dense", "relu", "softmax", "add", "concat", "dropout"} <= set(layer_types)
    metrics = schema["$defs"]["TrainSpec"]["properties"]["metrics"]["items"]["anyOf"][0]["enum"]
    assert {"mae", "accuracy"} <= set(metrics)


def test_a_plugin_given_with_plugin_adds_its_type_and_options(tmp_path):
    """`graphnet schema --plugin shift.py` knows the `shift` layer and its own options."""
    plugin = tmp_path / "shift.py"
    plugin.write_text(PLUGIN, encoding="utf-8")
    result = invoke("schema", "--plugin", plugin)
    assert result.exit_code == 0, result.output
    validator = jsonschema.Draft202012Validator(json.loads(result.output))
    data = seed()
    data["nodes"].insert(1, {"name": "moved", "type": "shift", "inputs": ["hidden"], "offset": 1})
    data["nodes"][2]["inputs"] = ["moved"]
    assert errors(validator, data) == []
    data["nodes"][1]["mode"] = "mul"
    assert len(errors(validator, data)) == 1
    assert "shift" not in json.dumps(
        spec_schema(get_registry())["$defs"]["NodeSpec"]["properties"]["type"]
    )


def test_schema_runs_as_a_real_process():
    """The installed `graphnet schema` prints the schema as JSON."""
    script = shutil.which("graphnet", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "graphnet"]
    process = subprocess.run(
        [*command, "schema"], capture_output=True, text=True, timeout=120, check=False
    )
    assert process.returncode == 0, process.stderr
    schema = json.loads(process.stdout)
    jsonschema.Draft202012Validator(schema).validate(read(SEED)[0])
    assert graphnet.load_spec(SEED).nodes[0].type in json.dumps(schema)
