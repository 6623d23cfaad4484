"""``graphnet schema``: the JSON Schema (draft 2020-12) of the spec format.

It is built from the spec's own pydantic models and from the ``Options`` model of every
registered plugin: a node's ``type`` (a loss's ``type``, an optimizer's ``type``, the data's
``source``) selects, through ``if``/``then``, the options of that plugin, with their
descriptions, defaults and enums; any other key is refused, as graphnet refuses it. Types are
matched case-insensitively, as graphnet matches them (``Dense`` and ``dense``).
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from graphnet.registry import Registry
from graphnet.spec import Spec

DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Descriptions of the spec's own keys (the plugins describe their options themselves).
HELP: dict[str, dict[str, str]] = {
    "Spec": {
        "name": "The run's name (default: the spec file's stem); runs go to runs/<name>.",
        "seed": "Seeds the initialisation, shuffling, dropout and synthetic data.",
        "dtype": "The floating-point type of parameters and data.",
        "data": "The data set: a data-source plugin named by `source`, with its options inline.",
        "inputs": "Named graph inputs, each with its per-sample shape (the batch axis is implicit).",
        "nodes": "The layer nodes; their order in the file does not matter.",
        "loss": "A loss, or a list of losses whose weighted sum is minimised.",
        "outputs": "What `predict` returns (default: the first input of each loss).",
        "train": (
            "How to train: epochs, batches, optimizer, metrics, checkpoints, learning-rate "
            "schedule, early stopping and gradient clipping."
        ),
    },
    "InputSpec": {
        "shape": "The per-sample shape, e.g. [2].",
        "classes": "auto or a list of class names: the values are names, read as class ids.",
    },
    "NodeSpec": {
        "name": "The node's name, unique among nodes and inputs.",
        "type": "The layer type: a registered layer plugin (case-insensitive).",
        "inputs": "The names of the inputs or nodes it reads, in order.",
    },
    "LossSpec": {
        "type": "The loss type: a registered loss plugin (case-insensitive).",
        "inputs": "What it compares, usually [prediction, target].",
        "weight": "Its weight in the total loss.",
    },
    "OptimizerSpec": {"type": "The optimizer type: a registered optimizer plugin."},
    "DataSpec": {
        "source": "The data source: a registered data-source plugin (case-insensitive).",
        "validation": "The fraction of samples held out for validation (0 = none), or a data source of its own.",
        "test": "The fraction held out for testing, scored once at the end (0 = none), or a data source of its own.",
        "stratify": "An input whose classes keep their share in the fraction splits.",
        "normalize": "Per input: standard or minmax, fitted on the training split only.",
    },
    "TrainSpec": {
        "epochs": "Passes over the training set.",
        "batch_size": "Samples per step; null = the whole training set.",
        "shuffle": "Shuffle the training set every epoch.",
        "optimizer": "The optimizer, with its options inline (default: sgd).",
        "metrics": "Metric plugins reported per epoch for each loss, e.g. [mae].",
        "checkpoint_every": "Seconds between checkpoints; 0 = after every epoch.",
        "lr_schedule": (
            "A learning-rate schedule plugin named by `type`, with its options inline: it sets "
            "the optimizer's lr before each epoch; metrics.csv gains an `lr` column."
        ),
        "early_stopping": (
            "Stop when a column of metrics.csv stops improving (as Keras' EarlyStopping); "
            "the best epoch's weights go to best.npz."
        ),
        "clip_grad_norm": (
            "Scale the gradients so that their global L2 norm is at most this, before each "
            "step (as torch.nn.utils.clip_grad_norm_)."
        ),
    },
    "ScheduleSpec": {"type": "The schedule type: a registered schedule plugin."},
    "EarlyStoppingSpec": {
        "monitor": "The column of metrics.csv to watch, e.g. val_loss, loss, val_<metric>, lr.",
        "mode": "min: lower is better; max: higher is better.",
        "patience": "Epochs without improvement before the run stops.",
        "min_delta": "How much an epoch must beat the best by to count as an improvement.",
        "restore_best": "End with the best epoch's weights in weights.npz (as in best.npz).",
    },
}

# model name in the spec's schema -> (plugin kind, the key naming the plugin)
PLUGGED = {
    "NodeSpec": ("layer", "type"),
    "LossSpec": ("loss", "type"),
    "OptimizerSpec": ("optimizer", "type"),
    "ScheduleSpec": ("schedule", "type"),
    "DataSpec": ("data source", "source"),
}


def caseless(name: str) -> str:
    """A regular expression matching ``name`` in any letter case: ``^[Dd][Ee]...$``."""
    parts = []
    for char in name:
        if char.lower() != char.upper():
            parts.append(f"[{char.lower()}{char.upper()}]")
        elif char in "\\^$.|?*+()[]{}-/":
            parts.append("\\" + char)
        else:
            parts.append(char)
    return "".join(parts)


def _names(names: list[str], what: str) -> dict[str, Any]:
    """A string that is one of ``names``, in any letter case (the enum helps editors complete)."""
    return {
        "type": "string",
        "description": what,
        "anyOf": [
            {"enum": names},
            {"pattern": "^(?:" + "|".join(caseless(n) for n in names) + ")$"},
        ],
    }


def _strip_titles(schema: Any) -> Any:
    """Drop pydantic's generated ``title``\\ s (``"Batch Size"``): descriptions say more."""
    if isinstance(schema, dict):
        return {
            key: (
                {k: _strip_titles(v) for k, v in value.items()}
                if key in ("properties", "$defs", "patternProperties")
                else _strip_titles(value)
            )
            for key, value in schema.items()
            if key != "title"
        }
    if isinstance(schema, list):
        return [_strip_titles(item) for item in schema]
    return schema


def options_schema(model: type[BaseModel], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """A plugin's ``Options`` as ``properties`` and ``required``; nested models go to ``defs``
    under ``prefix``."""
    try:
        schema = model.model_json_schema(ref_template=f"#/$defs/{prefix}{{model}}")
    except Exception:  # a type pydantic cannot describe: keep the names and descriptions
        schema = {
            "properties": {
                name: {"description": field.description} if field.description else {}
                for name, field in model.model_fields.items()
            },
            "required": [n for n, f in model.model_fields.items() if f.is_required()],
        }
    for name, nested in schema.get("$defs", {}).items():
        defs[prefix + name] = _strip_titles(nested)
    return {
        "properties": _strip_titles(schema.get("properties", {})),
        "required": schema.get("required", []),
    }


def _plugged(
    fixed: dict[str, Any], kind: str, key: str, registry: Registry, defs: dict[str, Any]
) -> dict[str, Any]:
    """A section naming a plugin with ``key``: fixed keys plus, per plugin, its own options."""
    properties = {k: v for k, v in fixed["properties"].items() if k != "options"}
    entries = registry.entries(kind)
    properties[key] = _names(sorted(entries), properties.get(key, {}).get("description", ""))
    branches = []
    for name, entry in sorted(entries.items()):
        options = options_schema(entry.cls.Options, f"{kind.replace(' ', '_')}.{name}.", defs)
        then: dict[str, Any] = {
            "properties": {**options["properties"], **{k: True for k in properties}},
            "additionalProperties": False,
        }
        if options["required"]:
            then["required"] = options["required"]
        summary = entry.cls.summary()
        if summary:
            then["description"] = summary
        branches.append(
            {
                "if": {"properties": {key: {"pattern": f"^{caseless(name)}$"}}, "required": [key]},
                "then": then,
            }
        )
    out: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": fixed.get("required", []),
    }
    if branches:
        out["allOf"] = branches
    return out


def _one_or_list(item: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    """``item`` or a non-empty list of them (graphnet accepts both)."""
    schema: dict[str, Any] = {
        "anyOf": [item, {"type": "array", "items": item, "minItems": 1}],
    }
    if description:
        schema["description"] = description
    return schema


def spec_schema(registry: Registry) -> dict[str, Any]:
    """The JSON Schema of a spec, with the options of every plugin in ``registry``."""
    base = Spec.model_json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = base.pop("$defs")
    for model, fields in HELP.items():
        target = base if model == "Spec" else defs[model]
        for name, text in fields.items():
            target["properties"][name]["description"] = text
    base = _strip_titles(base)
    base.pop("description", None)  # the model's docstring, not for users
    defs = _strip_titles(defs)
    for model, (kind, key) in PLUGGED.items():
        defs[model] = _plugged(defs[model], kind, key, registry, defs)
    for model in ("NodeSpec", "LossSpec"):
        inputs = defs[model]["properties"]["inputs"]
        defs[model]["properties"]["inputs"] = _one_or_list(
            {"type": "string"}, inputs.get("description")
        )
    defs["TrainSpec"]["properties"]["optimizer"] = {
        "$ref": "#/$defs/OptimizerSpec",
        "description": HELP["TrainSpec"]["optimizer"],
        "default": {"type": "sgd"},
    }
    metrics = defs["TrainSpec"]["properties"]["metrics"]
    metrics["items"] = _names(sorted(registry.entries("metric")), "A metric plugin.")
    metrics["default"] = []
    properties = base["properties"]
    properties["loss"] = _one_or_list({"$ref": "#/$defs/LossSpec"}, HELP["Spec"]["loss"])
    properties["outputs"] = {
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}},
            {"type": "null"},
        ],
        "description": HELP["Spec"]["outputs"],
        "default": None,
    }
    properties["inputs"]["additionalProperties"] = False  # a name that is not a valid name
    properties["train"] = {"$ref": "#/$defs/TrainSpec", "description": HELP["Spec"]["train"]}
    written_only = _blocks_schema(registry, properties, defs)
    return {
        "$schema": DIALECT,
        "title": "graphnet spec",
        "description": (
            "A network written down: inputs, layer nodes, losses, data and training. "
            "Generated by `graphnet schema` from the installed plugins."
        ),
        "type": "object",
        "properties": properties,
        "required": base.get("required", []),
        "additionalProperties": False,
        "allOf": [written_only],
        "$defs": dict(sorted(copy.deepcopy(defs).items())),
    }


def _blocks_schema(
    registry: Registry, properties: dict[str, Any], defs: dict[str, Any]
) -> dict[str, Any]:
    """``blocks:``, ``include:`` and block instances among the nodes. Returns the rule that a
    spec without blocks or include uses only layer types and plugins' blocks."""
    name = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_\-]*$"}
    defs["Block"] = {
        "type": "object",
        "description": "A reusable block: used as a node type, it expands to its nodes.",
        "properties": {
            "inputs": _one_or_list(name, "The block's own input names."),
            "options": {
                "type": "object",
                "description": "Option defaults; `$option` in a node takes the value.",
            },
            "nodes": {"type": "array", "minItems": 1, "items": {"type": "object"}},
            "output": {**name, "description": "The node whose output is the block's."},
        },
        "required": ["inputs", "nodes", "output"],
        "additionalProperties": False,
    }
    layer_types = _names(sorted(registry.entries("layer")), "")
    defs["BlockInstance"] = {
        "type": "object",
        "description": "A node whose type is a block; other keys set the block's options.",
        "properties": {
            "name": name,
            "type": {"type": "string"},
            "inputs": _one_or_list({"type": "string"}),
            "repeat": {"type": "integer", "minimum": 1, "description": "Chain N copies."},
        },
        "required": ["name", "type", "inputs"],
    }
    properties["nodes"]["items"] = {
        "if": {"properties": {"type": layer_types}, "required": ["type"]},
        "then": {"$ref": "#/$defs/NodeSpec"},
        "else": {"$ref": "#/$defs/BlockInstance"},
    }
    properties["blocks"] = {
        "type": "object",
        "description": "Reusable blocks by name (see the README's Reusable blocks).",
        "propertyNames": name,
        "additionalProperties": {"$ref": "#/$defs/Block"},
    }
    properties["include"] = _one_or_list(
        {"type": "string"}, "Files whose blocks: this spec uses (relative to this file)."
    )
    known = sorted(registry.blocks())
    allowed = {"anyOf": [layer_types, {"enum": known}]} if known else layer_types
    uses_blocks = {"anyOf": [{"required": ["blocks"]}, {"required": ["include"]}]}
    return {
        "if": {"not": uses_blocks},
        "then": {"properties": {"nodes": {"items": {"properties": {"type": allowed}}}}},
    }
