"""The error catalogue: every bad input a user can give gets one clear message.

Each row is a bad spec, data file, command line, plugin or weights file, run through the
command line. A user relies on three things for every one of them: the exit status (2 for bad
input, 1 for a run that failed), a message that names what is wrong and where (``file:line``,
the spec path, the node, the CSV line and column, the NPZ array key), and no traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import graphnet_process

from graphnet.cli import cli

# Lines: name 1, seed 2, data 3, source 4, path 5, columns 6, inputs 7, x 8, y 9, nodes 10,
# hidden 11, act 12, out 13, loss 14, train 15, epochs 16, batch_size 17, optimizer 18.
BASE = """\
name: base
seed: 0
data:
  source: csv
  path: data.csv
  columns: {x: [a, b], y: [c]}
inputs:
  x: {shape: [2]}
  y: {shape: [1]}
nodes:
  - {name: hidden, type: dense, inputs: [x], units: 4}
  - {name: act, type: relu, inputs: [hidden]}
  - {name: out, type: dense, inputs: [act], units: 1}
loss: {type: mse, inputs: [out, y]}
train:
  epochs: 2
  batch_size: 4
  optimizer: {type: sgd, lr: 0.1}
"""

BASE_JSON = """\
{
  "inputs": {"x": {"shape": [2]}, "y": {"shape": [1]}},
  "nodes": [
    {"name": "hidden", "type": "dense", "inputs": ["x"], "units": 4},
    {"name": "out", "type": "dense", "inputs": ["hidden"], "units": 1}
  ],
  "loss": {"type": "mse", "inputs": ["out", "y"]}
}
"""

# header on line 1, samples on lines 2-9
CSV = "a,b,c\n" + "".join(f"0.{i},0.{9 - i},0.{i}{i}\n" for i in range(1, 9))

NPZ_DATA = """\
data:
  source: npz
  path: data.npz
"""


def spec(*changes: tuple[str, str], base: str = BASE) -> str:
    """``base`` with each ``(old, new)`` replaced once; ``old`` must be there."""
    text = base
    for old, new in changes:
        assert text.count(old) == 1, f"{old!r} is not in the spec exactly once"
        text = text.replace(old, new)
    return text


def npz_spec(*changes: tuple[str, str]) -> str:
    """The base spec reading ``data.npz`` (inputs x and y by their own names)."""
    return spec(
        ("data:\n  source: csv\n  path: data.csv\n  columns: {x: [a, b], y: [c]}\n", NPZ_DATA),
        *changes,
    )


def npz(**arrays: Any) -> Callable[[Path], None]:
    """A file writer: an NPZ file of ``arrays``."""

    def write(path: Path) -> None:
        np.savez(path, **arrays)

    return write


def weights(change: Callable[[dict[str, np.ndarray]], None]) -> Callable[[Path], None]:
    """A file writer: the base network's parameters as an NPZ file, changed by ``change``."""

    def write(path: Path) -> None:
        arrays = {
            "hidden/W": np.zeros((2, 4)),
            "hidden/b": np.zeros(4),
            "out/W": np.zeros((4, 1)),
            "out/b": np.zeros(1),
        }
        change(arrays)
        np.savez(path, **arrays)

    return write


def object_array(path: Path) -> None:
    np.savez(path, x=np.array([{"a": 1}] * 8, dtype=object), y=np.zeros((8, 1)))


GOOD_X, GOOD_Y = np.linspace(0, 1, 16).reshape(8, 2), np.linspace(0, 1, 8).reshape(8, 1)
NAN_X = GOOD_X.copy()
NAN_X[5, 1] = np.nan

PLUGIN_HEAD = "import numpy as np\nimport graphnet\n\n\n"


def layer_plugin(type_name: str, body: str) -> str:
    """A plugin file holding one layer class ``type_name`` with ``body`` as its methods."""
    return (
        PLUGIN_HEAD
        + f"class Layer(graphnet.Layer):\n    type = {type_name!r}\n\n{body}\n\n"
        + "@graphnet.hookimpl\ndef graphnet_layers():\n    return [Layer]\n"
    )


PASS_BACKWARD = "    def backward(self, params, cache, grad):\n        return [grad], {}\n"

ACT_IS = "{name: act, type: relu, inputs: [hidden]}"


@dataclass
class Case:
    """One bad input: the files in the working directory, the command, and what it must say."""

    files: dict[str, str | Callable[[Path], None]]
    args: Sequence[str]
    status: int
    fragments: Sequence[str]
    before: Sequence[Sequence[str]] = field(default_factory=list)  # commands that must succeed
    env: dict[str, str] = field(default_factory=dict)


def run_spec(*extra: str) -> list[str]:
    return ["run", "spec.yaml", "--out", "run", "--quiet", *extra]


def case(
    id: str,
    files: dict[str, str | Callable[[Path], None]] | None,
    args: Sequence[str],
    status: int,
    fragments: Sequence[str],
    before: Sequence[Sequence[str]] = (),
    env: dict[str, str] | None = None,
) -> Any:
    return pytest.param(Case(files or {}, args, status, fragments, list(before), env or {}), id=id)


CASES = [
    # -- spec: names and references ----------------------------------------------------------
    case(
        "unknown-type",
        {"spec.yaml": spec(("type: relu", "type: rleu"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:12: nodes[1].type: unknown layer type 'rleu'", "(did you mean 'relu'?)"],
    ),
    case(
        "unknown-type-case-and-typo",
        {"spec.yaml": spec(("type: dense, inputs: [x]", "type: Dens, inputs: [x]"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:11: nodes[0].type: unknown layer type 'Dens'", "did you mean 'dense'"],
    ),
    case(
        "unknown-input-reference",
        {"spec.yaml": spec(("inputs: [hidden]", "inputs: [hiden]"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:12: nodes[1].inputs: unknown node 'hiden'", "(did you mean 'hidden'?)"],
    ),
    case(
        "unknown-loss-reference",
        {"spec.yaml": spec(("inputs: [out, y]", "inputs: [out, yy]"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:14: loss[0].inputs: unknown node 'yy'", "did you mean 'y'"],
    ),
    case(
        "unknown-output",
        {"spec.yaml": spec(("loss:", "outputs: [outt]\nloss:"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:14: outputs: unknown node 'outt'", "did you mean 'out'"],
    ),
    case(
        "cycle",
        {"spec.yaml": spec(("inputs: [x], units: 4", "inputs: [out], units: 4"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:11: nodes[0].inputs: cycle: hidden -> act -> out -> hidden"],
    ),
    case(
        "self-loop",
        {"spec.yaml": spec(("inputs: [hidden]", "inputs: [act]"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:12: nodes[1].inputs: cycle: act -> act"],
    ),
    case(
        "duplicate-node-name",
        {"spec.yaml": spec(("name: out", "name: act"), ("inputs: [out, y]", "inputs: [act, y]"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:13: nodes[2].name: duplicate node name 'act'", "first at spec.yaml:12"],
    ),
    case(
        "node-named-like-input",
        {"spec.yaml": spec(("name: act, type: relu", "name: x, type: relu"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:12: nodes[1].name: node 'x' has the name of an input"],
    ),
    case(
        "invalid-node-name",
        {"spec.yaml": spec(("name: act,", "name: 'a b',"), ("inputs: [act]", "inputs: ['a b']"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:12: nodes[1].name: 'a b' is not a valid name"],
    ),
    case(
        "duplicate-key",
        {"spec.yaml": spec(("  epochs: 2\n", "  epochs: 2\n  epochs: 3\n"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:17: train.epochs: duplicate key 'epochs' (first given on line 16)"],
    ),
    # -- spec: options -----------------------------------------------------------------------
    case(
        "missing-option",
        {"spec.yaml": spec((", units: 4}", "}"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:11: nodes[0]: missing required key 'units'"],
    ),
    case(
        "negative-option",
        {"spec.yaml": spec(("units: 4", "units: -4"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:11: nodes[0].units: input should be greater than or equal to 1, got -4"],
    ),
    case(
        "wrong-typed-option",
        {"spec.yaml": spec(("units: 4", "units: four"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:11: nodes[0].units: input should be a valid integer, got 'four'"],
    ),
    case(
        "float-for-int-option",
        {"spec.yaml": spec(("units: 4", "units: 4.5"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:11: nodes[0].units: input should be a valid integer, got 4.5"],
    ),
    case(
        "missing-section",
        {"spec.yaml": spec(("loss: {type: mse, inputs: [out, y]}\n", ""))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:1: missing required key 'loss'"],
    ),
    case(
        "negative-input-shape",
        {"spec.yaml": spec(("x: {shape: [2]}", "x: {shape: [-2]}"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:8: inputs.x.shape[0]: input should be greater than or equal to 1, got -2"],
    ),
    # -- spec: unknown keys at every level ---------------------------------------------------
    case(
        "unknown-key-top",
        {"spec.yaml": spec(("train:", "trian: {}\ntrain:"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:15: trian: unknown key 'trian' (did you mean 'train'?)"],
    ),
    case(
        "unknown-key-data",
        {"spec.yaml": spec(("  path: data.csv", "  pth: data.csv"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:5: data.pth: unknown option 'pth' for data source type 'csv'", "'path'"],
    ),
    case(
        "unknown-key-input",
        {"spec.yaml": spec(("x: {shape: [2]}", "x: {shape: [2], shap: [2]}"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:8: inputs.x.shap: unknown key 'shap' (did you mean 'shape'?)"],
    ),
    case(
        "unknown-key-node",
        {"spec.yaml": spec(("units: 1}", "units: 1, unitz: 2}"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:13: nodes[2].unitz: unknown option 'unitz' for layer type 'dense'", "'units'"],
    ),
    case(
        "unknown-key-loss",
        {"spec.yaml": spec(("inputs: [out, y]}", "inputs: [out, y], wieght: 2}"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:14: loss[0].wieght: unknown option 'wieght' for loss type 'mse'", "'weight'"],
    ),
    case(
        "unknown-key-train",
        {"spec.yaml": spec(("  epochs: 2", "  epoch: 2"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:16: train.epoch: unknown key 'epoch' (did you mean 'epochs'?)"],
    ),
    case(
        "unknown-key-optimizer",
        {"spec.yaml": spec(("lr: 0.1", "lr: 0.1, momentun: 0.9"))},
        ["validate", "spec.yaml"],
        2,
        [
            "spec.yaml:18: train.optimizer.momentun: unknown option 'momentun' for optimizer",
            "'momentum'",
        ],
    ),
    # -- spec: shapes and arity ---------------------------------------------------------------
    case(
        "add-shape-mismatch",
        {
            "spec.yaml": spec(
                (
                    "- {name: out,",
                    "- {name: wide, type: dense, inputs: [x], units: 5}\n  - {name: sum, type: add, inputs: [act, wide]}\n  - {name: out,",
                ),
                ("inputs: [act], units: 1", "inputs: [sum], units: 1"),
            )
        },
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:14: nodes[3].inputs: node 'sum' (add)", "[4]", "[5]", "act [4], wide [5]"],
    ),
    case(
        "add-one-input",
        {"spec.yaml": spec(("type: relu, inputs: [hidden]", "type: add, inputs: [hidden]"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:12: nodes[1].inputs: node 'act' (add)", "two or more inputs, got 1"],
    ),
    case(
        "concat-shape-mismatch",
        {
            "spec.yaml": spec(
                ("x: {shape: [2]}", "x: {shape: [2]}\n  z: {shape: [3, 2]}"),
                ("type: relu, inputs: [hidden]", "type: concat, inputs: [hidden, z]"),
            )
        },
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:13: nodes[1].inputs: node 'act' (concat)", "hidden [4], z [3, 2]"],
    ),
    case(
        "mse-shape-mismatch",
        {"spec.yaml": spec(("units: 1}", "units: 3}"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:14: loss[0].inputs: loss 'mse'", "prediction [3] and target [1]"],
    ),
    case(
        "bce-shape-mismatch",
        {"spec.yaml": spec(("units: 1}", "units: 2}"), ("type: mse", "type: bce"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:14: loss[0].inputs: loss 'bce'", "logits [2] and target [1]"],
    ),
    case(
        "cross-entropy-label-shape",
        {
            "spec.yaml": spec(
                ("units: 1}", "units: 3}"),
                ("type: mse", "type: cross_entropy"),
                ("y: {shape: [1]}", "y: {shape: [2]}"),
            )
        },
        ["validate", "spec.yaml"],
        2,
        [
            "spec.yaml:14: loss[0].inputs: loss 'cross_entropy'",
            "[1] or one-hot of shape [3], got [2]",
        ],
    ),
    case(
        "dense-arity",
        {"spec.yaml": spec(("inputs: [act], units: 1", "inputs: [act, x], units: 1"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:13: nodes[2].inputs: node 'out' (dense) takes 1 input, got 2"],
    ),
    case(
        "loss-arity",
        {"spec.yaml": spec(("inputs: [out, y]", "inputs: [out, y, x]"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:14: loss[0].inputs: loss 'mse' takes 2 inputs, got 3"],
    ),
    case(
        "no-inputs",
        {"spec.yaml": spec(("inputs: [hidden]", "inputs: []"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:12: nodes[1].inputs: list should have at least 1 item"],
    ),
    # -- spec: training --------------------------------------------------------------------
    case(
        "unknown-metric",
        {"spec.yaml": spec(("  epochs: 2", "  epochs: 2\n  metrics: [maе, mea]"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:17: train.metrics[0]: unknown metric type 'maе'", "did you mean 'mae'"],
    ),
    case(
        "unknown-optimizer",
        {"spec.yaml": spec(("type: sgd", "type: adamm"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:18: train.optimizer.type: unknown optimizer type 'adamm'", "'adam'"],
    ),
    case(
        "negative-epochs",
        {"spec.yaml": spec(("epochs: 2", "epochs: -1"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:16: train.epochs: input should be greater than or equal to 0, got -1"],
    ),
    case(
        "batch-size-0",
        {"spec.yaml": spec(("batch_size: 4", "batch_size: 0"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:17: train.batch_size: input should be greater than or equal to 1, got 0"],
    ),
    case(
        "validation-1",
        {"spec.yaml": spec(("  path: data.csv", "  path: data.csv\n  validation: 1.0"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:6: data.validation: input should be less than 1, got 1.0"],
    ),
    case(
        "validation-leaves-nothing",
        {
            "spec.yaml": spec(("  path: data.csv", "  path: data.csv\n  validation: 0.95")),
            "data.csv": CSV,
        },
        run_spec(),
        2,
        ["spec.yaml:6: data.validation: 0.95 of 8 samples leaves none to train on"],
    ),
    case(
        "dtype-float16",
        {"spec.yaml": spec(("seed: 0", "seed: 0\ndtype: float16"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:3: dtype: input should be 'float64' or 'float32', got 'float16'"],
    ),
    case(
        "negative-lr",
        {"spec.yaml": spec(("lr: 0.1", "lr: -0.1"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:18: train.optimizer.lr: input should be greater than 0, got -0.1"],
    ),
    case(
        "no-data-section",
        {
            "spec.yaml": spec(
                ("data:\n  source: csv\n  path: data.csv\n  columns: {x: [a, b], y: [c]}\n", "")
            )
        },
        run_spec(),
        2,
        ["spec.yaml:1: the spec has no `data:` section"],
    ),
    # -- spec files: syntax and kind ---------------------------------------------------------
    case(
        "malformed-yaml",
        {"spec.yaml": spec(("inputs: [hidden]}", "inputs: [hidden}"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:12:", "not valid YAML"],
    ),
    case(
        "yaml-tabs",
        {"spec.yaml": spec(("  epochs: 2", "\tepochs: 2"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:16:", "not valid YAML", "tab"],
    ),
    case(
        "malformed-json",
        {"spec.json": spec(('"units": 4}', '"units" 4}'), base=BASE_JSON)},
        ["validate", "spec.json"],
        2,
        ["spec.json:4:", "not valid JSON: Expecting ':' delimiter"],
    ),
    case(
        "json-trailing-comma",
        {"spec.json": spec(('"units": 1}\n', '"units": 1},\n'), base=BASE_JSON)},
        ["validate", "spec.json"],
        2,
        ["spec.json:5:", "not valid JSON: trailing comma before ']'"],
    ),
    case(
        "json-nan",
        {"spec.json": spec(('"units": 4}', '"units": NaN}'), base=BASE_JSON)},
        ["validate", "spec.json"],
        2,
        ["spec.json", "not valid JSON", "NaN"],
    ),
    case(
        "empty-file",
        {"spec.yaml": ""},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml: the spec file is empty"],
    ),
    case(
        "yaml-recursive-alias",
        {"spec.yaml": spec(("  y: {shape: [1]}", "  y: &y {shape: [1], more: *y}"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:9: inputs.y.more: an alias (*name) inside the value it names"],
    ),
    case(
        "yaml-alias-bomb",
        {
            "spec.yaml": "".join(
                f"{k}: &{k} [{', '.join([f'*{p}' if p else '1'] * 10)}]\n"
                for p, k in zip(["", "a", "b", "c", "d", "e"], "abcdef", strict=True)
            )
        },
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml: aliases (*name) expand the document to more than 1,000,000 values"],
    ),
    case(
        "yaml-python-tag",
        {"spec.yaml": spec(("name: base", "name: !!python/object/apply:os.system ['true']"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:1:7: not valid YAML", "python/object/apply:os.system"],
    ),
    case(
        "only-comments",
        {"spec.yaml": "# nothing here\n"},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml: the spec file is empty"],
    ),
    case(
        "yaml-list",
        {"spec.yaml": "- inputs\n- nodes\n"},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:1: a spec must be a mapping", "not a list"],
    ),
    case(
        "json-scalar",
        {"spec.json": "\n42\n"},
        ["validate", "spec.json"],
        2,
        ["spec.json:2: a spec must be a mapping", "not a int"],
    ),
    case(
        "yaml-string",
        {"spec.yaml": "just some words\n"},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:1: a spec must be a mapping", "not a str"],
    ),
    case(
        "not-utf8",
        {"spec.yaml": lambda path: path.write_bytes(b"name: \xff\xfe\n")},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml: not UTF-8 text (byte 6)"],
    ),
    case(
        "missing-spec-file",
        {},
        ["validate", "nothere.yaml"],
        2,
        ["nothere.yaml: spec file not found"],
    ),
    case(
        "folder-as-spec",
        {"folder/keep.txt": ""},
        ["validate", "folder"],
        2,
        ["'folder'", "is a directory"],
    ),
    # -- data --------------------------------------------------------------------------------
    case(
        "missing-data-file",
        {"spec.yaml": BASE},
        run_spec(),
        2,
        ["data.csv: data file not found"],
    ),
    case(
        "csv-missing-column",
        {"spec.yaml": BASE, "data.csv": CSV.replace("a,b,c", "a,bb,c")},
        run_spec(),
        2,
        ["data.csv:1: columns.x: no column 'b' in the header (did you mean 'bb'?)"],
    ),
    case(
        "csv-non-numeric",
        {"spec.yaml": BASE, "data.csv": CSV.replace("0.4,0.5", "0.4,five")},
        run_spec(),
        2,
        ["data.csv:5: column 'b': 'five' is not a number"],
    ),
    case(
        "csv-ragged-row",
        {"spec.yaml": BASE, "data.csv": CSV.replace("0.3,0.6,0.33", "0.3,0.6")},
        run_spec(),
        2,
        ["data.csv:4: 2 fields, the header has 3"],
    ),
    case(
        "csv-empty",
        {"spec.yaml": BASE, "data.csv": ""},
        run_spec(),
        2,
        ["data.csv: the CSV file is empty"],
    ),
    case(
        "csv-header-only",
        {"spec.yaml": BASE, "data.csv": "a,b,c\n"},
        run_spec(),
        2,
        ["spec.yaml:4: data: the data set is empty"],
    ),
    case(
        "csv-nan",
        {"spec.yaml": BASE, "data.csv": CSV.replace("0.6,0.3,0.66", "0.6,nan,0.66")},
        run_spec(),
        2,
        ["data.csv:7: column 'b': 'nan' is not a finite number"],
    ),
    case(
        "csv-inf",
        {"spec.yaml": BASE, "data.csv": CSV.replace("0.2,0.7,0.22", "0.2,0.7,-inf")},
        run_spec(),
        2,
        ["data.csv:3: column 'c': '-inf' is not a finite number"],
    ),
    case(
        "npz-missing-key",
        {"spec.yaml": npz_spec(), "data.npz": npz(x=GOOD_X, target=GOOD_Y)},
        run_spec(),
        2,
        ["spec.yaml:4: data: the data has no array for input 'y' (it gives: target, x)"],
    ),
    case(
        "npz-missing-mapped-key",
        {
            "spec.yaml": npz_spec(("path: data.npz", "path: data.npz\n  arrays: {y: targets}")),
            "data.npz": npz(x=GOOD_X, target=GOOD_Y),
        },
        run_spec(),
        2,
        ["data.npz: arrays.y: no array 'targets' in the file", "did you mean 'target'"],
    ),
    case(
        "npz-wrong-sample-shape",
        {"spec.yaml": npz_spec(), "data.npz": npz(x=np.zeros((8, 3)), y=GOOD_Y)},
        run_spec(),
        2,
        [
            "inputs.x.shape: input 'x': per-sample shape [3] in the data (array [8, 3]), the spec says [2]"
        ],
    ),
    case(
        "npz-object-array",
        {"spec.yaml": npz_spec(), "data.npz": object_array},
        run_spec(),
        2,
        ["data.npz: cannot be read without pickle"],
    ),
    case(
        "npz-not-npz",
        {"spec.yaml": npz_spec(), "data.npz": "x,y\n1,2\n"},
        run_spec(),
        2,
        ["data.npz: not a readable NPZ file"],
    ),
    case(
        "npz-nan",
        {"spec.yaml": npz_spec(), "data.npz": npz(x=NAN_X, y=GOOD_Y)},
        run_spec(),
        2,
        ["data.npz: array 'x': sample 5 holds nan at [1]; the data must be finite"],
    ),
    case(
        "npz-inf-mapped",
        {
            "spec.yaml": npz_spec(("path: data.npz", "path: data.npz\n  arrays: {y: target}")),
            "data.npz": npz(x=GOOD_X, target=np.where(GOOD_Y > 0.5, np.inf, GOOD_Y)),
        },
        run_spec(),
        2,
        ["data.npz: array 'target': sample 4 holds inf at [0]"],
    ),
    case(
        "npz-sample-counts",
        {"spec.yaml": npz_spec(), "data.npz": npz(x=GOOD_X, y=GOOD_Y[:7])},
        run_spec(),
        2,
        ["spec.yaml:4: data: input 'y' has 7 samples, input 'x' has 8"],
    ),
    case(
        "npz-strings",
        {"spec.yaml": npz_spec(), "data.npz": npz(x=np.array([["a", "b"]] * 8), y=GOOD_Y)},
        run_spec(),
        2,
        ["spec.yaml:4: data: input 'x': the data is <U1, not real numbers"],
    ),
    case(
        "labels-out-of-range",
        {
            "spec.yaml": npz_spec(
                ("units: 1}", "units: 3}"),
                ("type: mse", "type: cross_entropy"),
                ("batch_size: 4", "batch_size: 4\n  shuffle: false"),
            ),
            "data.npz": npz(x=GOOD_X, y=np.array([[0], [1], [2], [1], [0], [3], [1], [2]])),
        },
        run_spec(),
        2,
        [
            "spec.yaml:13: loss[0]: loss 'cross_entropy' of out, y: label 3.0 of sample 5",
            "not a class id in 0..2",
        ],
    ),
    case(
        "synthetic-wrong-inputs",
        {
            "spec.yaml": spec(
                (
                    "data:\n  source: csv\n  path: data.csv\n  columns: {x: [a, b], y: [c]}\n",
                    "data: {source: synthetic, function: product, samples: 8}\n",
                ),
                ("y: {shape: [1]}", "target: {shape: [1]}"),
                ("inputs: [out, y]", "inputs: [out, target]"),
            )
        },
        run_spec(),
        2,
        ["spec.yaml:3: data: the data has no array for input 'target' (it gives: x, y)"],
    ),
    case(
        "unknown-synthetic-function",
        {
            "spec.yaml": spec(
                (
                    "data:\n  source: csv\n  path: data.csv\n  columns: {x: [a, b], y: [c]}\n",
                    "data: {source: synthetic, function: prodcut}\n",
                )
            )
        },
        ["validate", "spec.yaml"],
        2,
        [
            "spec.yaml:3: data.function: input should be 'product', 'xor', 'spirals' or 'blobs', got 'prodcut'"
        ],
    ),
    # -- command line: --set ------------------------------------------------------------------
    case(
        "set-unknown-key",
        {"spec.yaml": BASE},
        ["validate", "spec.yaml", "--set", "train.epoch=3"],
        2,
        ["--set train.epoch=3: train.epoch: unknown key 'epoch' (did you mean 'epochs'?)"],
    ),
    case(
        "set-unknown-top-key",
        {"spec.yaml": BASE},
        ["validate", "spec.yaml", "--set", "trian.epochs=3"],
        2,
        ["--set trian.epochs=3: trian: unknown key 'trian' (did you mean 'train'?)"],
    ),
    case(
        "set-unknown-node",
        {"spec.yaml": BASE},
        ["validate", "spec.yaml", "--set", "nodes.hiden.units=8"],
        2,
        ["--set nodes.hiden.units=8: nodes has no node named 'hiden' (did you mean 'hidden'?)"],
    ),
    case(
        "set-node-index-out-of-range",
        {"spec.yaml": BASE},
        ["validate", "spec.yaml", "--set", "nodes.7.units=8"],
        2,
        ["--set nodes.7.units=8: nodes has no item 7"],
    ),
    case(
        "set-wrong-type",
        {"spec.yaml": BASE},
        ["validate", "spec.yaml", "--set", "train.epochs=many"],
        2,
        ["--set train.epochs=many: train.epochs: input should be a valid integer, got 'many'"],
    ),
    case(
        "set-without-equals",
        {"spec.yaml": BASE},
        ["validate", "spec.yaml", "--set", "train.epochs"],
        2,
        ["--set takes KEY=VALUE", "'train.epochs'"],
    ),
    case(
        "set-bad-yaml-value",
        {"spec.yaml": BASE},
        ["validate", "spec.yaml", "--set", "train.epochs=[1"],
        2,
        [
            "--set train.epochs=[1: the value is not a valid YAML scalar (did not find expected ',' or ']')"
        ],
    ),
    case(
        "set-into-a-value",
        {"spec.yaml": BASE},
        ["validate", "spec.yaml", "--set", "seed.deep=1"],
        2,
        ["--set seed.deep=1: seed is a value, not a section"],
    ),
    # -- command line: --weights, --out, --resume ----------------------------------------------
    case(
        "weights-missing-file",
        {"spec.yaml": BASE, "data.csv": CSV},
        run_spec("--weights", "nothere.npz"),
        2,
        ["nothere.npz: weights file not found"],
    ),
    case(
        "weights-missing-array",
        {"spec.yaml": BASE, "data.csv": CSV, "w.npz": weights(lambda w: w.pop("out/b"))},
        run_spec("--weights", "w.npz"),
        2,
        ["w.npz: missing out/b"],
    ),
    case(
        "weights-extra-array",
        {
            "spec.yaml": BASE,
            "data.csv": CSV,
            "w.npz": weights(lambda w: w.update(extra=np.ones(2))),
        },
        run_spec("--weights", "w.npz"),
        2,
        ["w.npz: unexpected extra"],
    ),
    case(
        "weights-wrong-shape",
        {
            "spec.yaml": BASE,
            "data.csv": CSV,
            "w.npz": weights(lambda w: w.update({"hidden/W": np.ones((4, 2))})),
        },
        run_spec("--weights", "w.npz"),
        2,
        ["w.npz: hidden/W: shape [4, 2], the network needs [2, 4]"],
    ),
    case(
        "weights-nan",
        {"spec.yaml": BASE, "data.csv": CSV, "w.npz": weights(lambda w: w["out/W"].fill(np.nan))},
        run_spec("--weights", "w.npz"),
        2,
        ["w.npz: out/W: holds NaN or Inf"],
    ),
    case(
        "weights-not-npz",
        {"spec.yaml": BASE, "data.csv": CSV, "w.npz": "not an archive"},
        run_spec("--weights", "w.npz"),
        2,
        ["w.npz: not a readable NPZ file"],
    ),
    case(
        "weights-with-resume",
        {"spec.yaml": BASE, "data.csv": CSV, "w.npz": weights(lambda w: None)},
        run_spec("--weights", "w.npz", "--resume"),
        2,
        ["--weights and --resume do not go together"],
        before=[run_spec()],
    ),
    case(
        "out-holds-another-run",
        {"spec.yaml": BASE, "data.csv": CSV},
        run_spec(),
        2,
        ["run: --out: the folder holds another run", "--resume"],
        before=[run_spec()],
    ),
    case(
        "out-is-a-file",
        {"spec.yaml": BASE, "data.csv": CSV, "run": "a file"},
        run_spec(),
        2,
        ["'--out'", "'run' is a file"],
    ),
    case(
        "resume-changed-spec",
        {"spec.yaml": BASE, "data.csv": CSV},
        run_spec("--resume", "--set", "nodes.hidden.units=8", "--set", "train.epochs=5"),
        2,
        [
            "run/spec.yaml: --resume: the spec differs from the run's in nodes[0].units: 4 in the run, 8 now",
            "only train.epochs may change",
        ],
        before=[run_spec()],
    ),
    # -- plugins -----------------------------------------------------------------------------
    case(
        "plugin-module-fails-to-import",
        {"spec.yaml": BASE, "broken.py": "import numpy\nraise ImportError('needs torch')\n"},
        ["validate", "spec.yaml", "--plugin", "{tmp}/broken.py"],
        2,
        ["plugin file", "broken.py failed to import: ImportError: needs torch"],
    ),
    case(
        "plugin-syntax-error",
        {"spec.yaml": BASE, "syntax.py": "def graphnet_layers(:\n"},
        ["validate", "spec.yaml", "--plugin", "{tmp}/syntax.py"],
        2,
        ["syntax.py failed to import: SyntaxError", "line 1"],
    ),
    case(
        "plugin-module-not-installed",
        {"spec.yaml": BASE},
        ["validate", "spec.yaml", "--plugin", "graphnet_no_such_plugin"],
        2,
        ["plugin module 'graphnet_no_such_plugin' failed to import: ModuleNotFoundError"],
    ),
    case(
        "plugin-file-missing",
        {"spec.yaml": BASE},
        ["validate", "spec.yaml", "--plugin", "{tmp}/missing_plugin.py"],
        2,
        ["plugin file not found:", "missing_plugin.py"],
    ),
    case(
        "plugin-type-registered-twice",
        {
            "spec.yaml": BASE,
            "one.py": layer_plugin("twice", ""),
            "two.py": layer_plugin("twice", ""),
        },
        ["validate", "spec.yaml", "--plugin", "{tmp}/one.py", "--plugin", "{tmp}/two.py"],
        2,
        ["layer type 'twice' is registered twice", "one.py", "two.py"],
    ),
    case(
        "plugin-claims-a-built-in",
        {"spec.yaml": BASE, "mydense.py": layer_plugin("Dense", "")},
        ["validate", "spec.yaml", "--plugin", "{tmp}/mydense.py"],
        2,
        ["layer type 'dense' is registered twice", "'graphnet'", "mydense.py"],
    ),
    case(
        "plugin-output-shape-raises",
        {
            "spec.yaml": spec((ACT_IS, "{name: act, type: shaky, inputs: [hidden]}")),
            "shaky.py": layer_plugin(
                "shaky",
                "    def output_shape(self, input_shapes):\n        raise KeyError('units')\n",
            ),
        },
        ["validate", "spec.yaml", "--plugin", "{tmp}/shaky.py"],
        1,
        [
            "spec.yaml:12: nodes[1]: node 'act' (shaky): output_shape failed: KeyError: 'units' (plugin "
        ],
    ),
    case(
        "plugin-forward-wrong-dtype",
        {
            "spec.yaml": spec((ACT_IS, "{name: act, type: single, inputs: [hidden]}")),
            "data.csv": CSV,
            "single.py": layer_plugin(
                "single",
                "    def forward(self, params, inputs, training):\n"
                "        return inputs[0].astype(np.float32), None\n\n" + PASS_BACKWARD,
            ),
        },
        run_spec("--plugin", "{tmp}/single.py"),
        1,
        [
            "spec.yaml:12: nodes[1]: node 'act' (single): forward returned float32 [4, 4], expected float64"
        ],
    ),
    case(
        "plugin-forward-wrong-shape",
        {
            "spec.yaml": spec((ACT_IS, "{name: act, type: flat, inputs: [hidden]}")),
            "data.csv": CSV,
            "flat.py": layer_plugin(
                "flat",
                "    def forward(self, params, inputs, training):\n"
                "        return inputs[0][:, :2], None\n\n" + PASS_BACKWARD,
            ),
        },
        run_spec("--plugin", "{tmp}/flat.py"),
        1,
        [
            "spec.yaml:12: nodes[1]: node 'act' (flat): forward returned float64 [4, 2], expected float64 [batch, 4]"
        ],
    ),
    case(
        "plugin-forward-raises",
        {
            "spec.yaml": spec((ACT_IS, "{name: act, type: crash, inputs: [hidden]}")),
            "data.csv": CSV,
            "crash.py": layer_plugin(
                "crash",
                "    def forward(self, params, inputs, training):\n"
                "        raise ZeroDivisionError('oops')\n\n" + PASS_BACKWARD,
            ),
        },
        run_spec("--plugin", "{tmp}/crash.py"),
        1,
        ["spec.yaml:12: nodes[1]: node 'act' (crash): forward failed: ZeroDivisionError: oops"],
    ),
    case(
        "plugin-options-not-pydantic",
        {
            "spec.yaml": BASE,
            "plain.py": layer_plugin("plain", "    class Options:\n        units = 3\n"),
        },
        ["validate", "spec.yaml", "--plugin", "{tmp}/plain.py"],
        2,
        ["layer class Layer of plugin", "plain.py", "Options must be a pydantic BaseModel"],
    ),
    case(
        "plugin-backward-wrong-count",
        {
            "spec.yaml": spec((ACT_IS, "{name: act, type: twograds, inputs: [hidden]}")),
            "data.csv": CSV,
            "twograds.py": layer_plugin(
                "twograds",
                "    def forward(self, params, inputs, training):\n"
                "        return inputs[0], None\n\n"
                "    def backward(self, params, cache, grad):\n"
                "        return [grad, grad], {}\n",
            ),
        },
        run_spec("--plugin", "{tmp}/twograds.py"),
        1,
        [
            "spec.yaml:12: nodes[1]: node 'act' (twograds): backward returned 2 input gradients "
            "for 1 inputs (plugin "
        ],
    ),
    case(
        "plugin-loss-not-a-scalar",
        {
            "spec.yaml": spec(("type: mse", "type: vector")),
            "data.csv": CSV,
            "vector.py": PLUGIN_HEAD
            + "class Vector(graphnet.Loss):\n    type = 'vector'\n\n"
            + "    def forward(self, inputs):\n        return inputs[0] - inputs[1], None\n\n"
            + "@graphnet.hookimpl\ndef graphnet_losses():\n    return [Vector]\n",
        },
        run_spec("--plugin", "{tmp}/vector.py"),
        1,
        [
            "spec.yaml:14: loss[0]: loss 'vector' of out, y: forward returned ndarray [4, 1] as the loss"
        ],
    ),
    case(
        "plugin-optimizer-step-raises",
        {
            "spec.yaml": spec(("type: sgd, lr: 0.1", "type: broken")),
            "data.csv": CSV,
            "broken.py": PLUGIN_HEAD
            + "class Broken(graphnet.Optimizer):\n    type = 'broken'\n\n"
            + "    def step(self, params, grads, state):\n        raise KeyError('velocity')\n\n"
            + "@graphnet.hookimpl\ndef graphnet_optimizers():\n    return [Broken]\n",
        },
        run_spec("--plugin", "{tmp}/broken.py"),
        1,
        ["spec.yaml:18: train.optimizer: optimizer 'broken': step failed: KeyError: 'velocity'"],
    ),
    case(
        "plugin-metric-raises",
        {
            "spec.yaml": spec(("  epochs: 2", "  epochs: 2\n  metrics: [mae, fragile]")),
            "data.csv": CSV,
            "fragile.py": PLUGIN_HEAD
            + "class Fragile(graphnet.Metric):\n    type = 'fragile'\n\n"
            + "    def compute(self, prediction, target):\n        return 1 / 0\n\n"
            + "@graphnet.hookimpl\ndef graphnet_metrics():\n    return [Fragile]\n",
        },
        run_spec("--plugin", "{tmp}/fragile.py"),
        1,
        ["spec.yaml:17: train.metrics[1]: metric 'fragile': compute failed: ZeroDivisionError"],
    ),
    case(
        "units-too-large-to-allocate",
        {"spec.yaml": spec(("units: 4", "units: 1000000000000000")), "data.csv": CSV},
        run_spec(),
        2,
        ["spec.yaml:11: nodes[0]: node 'hidden' (dense): init_params ran out of memory"],
    ),
    case(
        "plugin-from-environment-missing",
        {"spec.yaml": BASE},
        ["validate", "spec.yaml"],
        2,
        ["plugin file not found: ./nope.py"],
        env={"GRAPHNET_PLUGINS": "./nope.py"},
    ),
    # -- training that fails ------------------------------------------------------------------
    case(
        "divergence",
        {"spec.yaml": spec(("lr: 0.1", "lr: 1e200")), "data.csv": CSV},
        run_spec(),
        1,
        [
            "error: the loss became inf in epoch 1, batch 2",
            "the first node whose output is not finite is 'out'",
            "lower train.optimizer.lr",
            "no epoch was complete",
        ],
    ),
    case(
        "divergence-later-epoch",
        {"spec.yaml": spec(("lr: 0.1", "lr: 1e30"), ("epochs: 2", "epochs: 5")), "data.csv": CSV},
        run_spec(),
        1,
        [
            "error: the loss became inf in epoch 3, batch 2",
            "the loss itself overflowed",
            "the run folder keeps epoch 2",
        ],
    ),
    # -- names, --set values, run folders (the defects found by trying to break it) ---------
    case(
        "name-escapes-the-runs-folder",
        {"spec.yaml": spec(("name: base", "name: ../../escaped"))},
        ["validate", "spec.yaml"],
        2,
        ["spec.yaml:1: name: '../../escaped' is not a valid name"],
    ),
    case(
        "set-name-absolute-path",
        {"spec.yaml": BASE},
        ["validate", "spec.yaml", "--set", "name=/somewhere/else"],
        2,
        ["--set name=/somewhere/else: name: '/somewhere/else' is not a valid name"],
    ),
    case(
        "set-alias-bomb",
        {"spec.yaml": BASE},
        [
            "validate",
            "spec.yaml",
            "--set",
            "seed=["
            + ",".join(
                f"&l{i} [" + ",".join([f"*l{i - 1}" if i else "x"] * 10) + "]" for i in range(9)
            )
            + "]",
        ],
        2,
        ["aliases (*name) expand the document to more than 10,000 values"],
    ),
    case(
        "set-lr-infinite",
        {"spec.yaml": BASE},
        ["validate", "spec.yaml", "--set", "train.optimizer.lr=.inf"],
        2,
        ["--set train.optimizer.lr=.inf: train.optimizer.lr: inf is not a finite number"],
    ),
    case(
        "set-loss-weight-nan",
        {"spec.yaml": BASE},
        ["validate", "spec.yaml", "--set", "loss.weight=.nan"],
        2,
        ["--set loss.weight=.nan: loss[0].weight"],
    ),
    case(
        "outputs-empty",
        {"spec.yaml": BASE + "outputs: []\n"},
        ["validate", "spec.yaml"],
        2,
        ["outputs: list should have at least 1 item"],
    ),
    case(
        "key-read-as-boolean",
        {"spec.yaml": BASE + "true: 1\n"},
        ["validate", "spec.yaml"],
        2,
        ["the key True is read as bool, not a string"],
    ),
    case(
        "resume-a-folder-that-is-no-run",
        {"spec.yaml": BASE, "data.csv": CSV, "run/metrics.csv": "my,own\n1,2\n"},
        run_spec("--resume"),
        2,
        ["run: resume: not a run folder of graphnet's (it has no spec.yaml)"],
    ),
    case(
        "resume-fewer-epochs-than-done",
        {"spec.yaml": BASE, "data.csv": CSV},
        run_spec("--resume", "--set", "train.epochs=1"),
        2,
        ["has done 2 epochs, more than train.epochs=1"],
        before=[run_spec()],
    ),
]


def write_files(directory: Path, files: dict[str, str | Callable[[Path], None]]) -> None:
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        else:
            path.write_text(content, encoding="utf-8")


def expand(args: Sequence[str], directory: Path) -> list[str]:
    return [arg.replace("{tmp}", str(directory)) for arg in args]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, and no plugins from the caller's environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GRAPHNET_PLUGINS", raising=False)
    return tmp_path


def test_the_catalogue_is_large_and_distinct() -> None:
    """The catalogue covers at least 45 distinct bad inputs, each with its own id."""
    ids = [param.id for param in CASES]
    assert len(ids) >= 45
    assert len(set(ids)) == len(ids)


def check_output(status: int, stdout: str, stderr: str, expected: Case) -> None:
    output = f"exit {status}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    assert status == expected.status, output
    assert "Traceback" not in stdout and "Traceback" not in stderr, output
    assert "internal error" not in stderr, output
    for fragment in expected.fragments:
        assert fragment in stderr, f"{fragment!r} not in the message:\n{output}"


@pytest.mark.parametrize("bad", CASES)
def test_bad_input_gets_a_clear_error(workdir: Path, bad: Case) -> None:
    """Each bad input exits 2 (1 for a failed run) with a message naming what and where."""
    write_files(workdir, bad.files)
    runner = CliRunner()
    for command in bad.before:
        done = runner.invoke(cli, expand(command, workdir))
        assert done.exit_code == 0, done.output
    result = runner.invoke(cli, expand(bad.args, workdir), env=bad.env)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    check_output(result.exit_code, result.stdout, result.stderr, bad)


def test_a_folder_holding_another_run_is_refused_and_left_untouched(workdir: Path) -> None:
    """`--out` on a folder holding another run exits 2 and changes no byte of the old run."""
    write_files(workdir, {"spec.yaml": BASE, "data.csv": CSV})
    runner = CliRunner()
    assert runner.invoke(cli, run_spec()).exit_code == 0
    run = workdir / "run"
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert {"spec.yaml", "weights.npz", "checkpoint.npz", "metrics.csv"} <= set(before)
    changed = spec(("units: 4", "units: 8"), ("epochs: 2", "epochs: 3"))
    (workdir / "spec.yaml").write_text(changed, encoding="utf-8")
    for args in (
        run_spec(),
        run_spec("--set", "train.epochs=1"),
        ["run", "spec.yaml", "--out", "run/"],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert "--out: the folder holds another run" in result.stderr
        assert "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


IN_A_PROCESS = {
    "unknown-type",
    "malformed-json",
    "csv-non-numeric",
    "npz-object-array",
    "set-without-equals",
    "plugin-module-fails-to-import",
    "divergence",
}


@pytest.mark.parametrize("bad", [c for c in CASES if c.id in IN_A_PROCESS])
def test_bad_input_in_a_real_process(tmp_path: Path, bad: Case) -> None:
    """`python -m graphnet` as a real process: the same status and message, no traceback."""
    write_files(tmp_path, bad.files)
    done = graphnet_process(*expand(bad.args, tmp_path), cwd=tmp_path, env=bad.env)
    check_output(done.returncode, done.stdout, done.stderr, bad)
