"""Real tasks end to end, the data side: normalization, splits, class names, target checks,
evaluate and predict's class columns, each against a closed form or a located error."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import graphnet
from graphnet.cli import cli
from graphnet.dataset import prepare, streams
from graphnet.npzfile import read_npz

NAMES = ["red", "green", "blue"]


def write_csv(path: Path, n: int = 60, seed: int = 0, names: list[str] = NAMES) -> Path:
    """a, b numbers; c = 3a - 2b + 100 (a regression target); kind: a class name."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["a", "b", "c", "kind"])
        for i in range(n):
            a, b = rng.normal(5, 2), rng.normal(-3, 0.5)
            writer.writerow([repr(a), repr(b), repr(3 * a - 2 * b + 100), names[i % len(names)]])
    return path


REGRESSION = """\
name: reg
data:
  source: csv
  path: data.csv
  columns: {x: [a, b], y: [c]}
  validation: 0.25
  normalize: {x: standard, y: minmax}
inputs:
  x: {shape: [2]}
  y: {shape: [1]}
nodes:
  - {name: out, type: dense, inputs: [x], units: 1}
loss: {type: mse, inputs: [out, y]}
train: {epochs: 3, optimizer: {type: sgd, lr: 0.1}, metrics: [mae]}
"""

CLASSES = """\
name: cls
data:
  source: csv
  path: data.csv
  columns: {x: [a, b], y: [kind]}
  test: 0.5
  stratify: y
  normalize: {x: standard}
inputs:
  x: {shape: [2]}
  y: {shape: [1], classes: auto}
nodes:
  - {name: logits, type: dense, inputs: [x], units: 3}
loss: {type: cross_entropy, inputs: [logits, y]}
train: {epochs: 2, metrics: [accuracy]}
"""


def folder(tmp_path: Path, spec: str, **files: str) -> Path:
    write_csv(tmp_path / "data.csv")
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    path = tmp_path / "spec.yaml"
    path.write_text(spec, encoding="utf-8")
    return path


def test_normalization_statistics_are_the_training_splits(tmp_path: Path) -> None:
    """weights.npz holds data/<input>/shift and scale: the training split's mean and population
    std (standard) and min and max - min (minmax), never the validation samples'."""
    spec = graphnet.load_spec(folder(tmp_path, REGRESSION))
    data = prepare(spec, streams(spec.seed))
    graphnet.train(spec, out_dir=tmp_path / "run")
    saved = read_npz(tmp_path / "run" / "weights.npz", "weights")
    raw = {
        k: v * data.normalizer.scale[k] + data.normalizer.shift[k] for k, v in data.train.items()
    }
    x, y = raw["x"], raw["y"]
    np.testing.assert_allclose(saved["data/x/shift"], x.mean(axis=0))
    np.testing.assert_allclose(saved["data/x/scale"], np.sqrt(((x - x.mean(0)) ** 2).mean(0)))
    np.testing.assert_allclose(saved["data/y/shift"], y.min(axis=0))
    np.testing.assert_allclose(saved["data/y/scale"], y.max(axis=0) - y.min(axis=0))
    assert len(x) == 45  # 60 samples, a quarter held out


def test_predict_returns_the_targets_units(tmp_path: Path) -> None:
    """A prediction trained against a normalized target comes back in the target's units:
    load_run's Network.predict equals the network's normalized output, scaled back."""
    spec = folder(tmp_path, REGRESSION)
    graphnet.train(spec, out_dir=tmp_path / "run")
    network = graphnet.load_run(tmp_path / "run")
    weights = read_npz(tmp_path / "run" / "weights.npz", "weights")
    x = np.array([[5.0, -3.0], [7.0, -2.5]])
    z = (x - weights["data/x/shift"]) / weights["data/x/scale"]
    normalized = z @ weights["out/W"] + weights["out/b"]
    expected = normalized * weights["data/y/scale"] + weights["data/y/shift"]
    np.testing.assert_allclose(network.predict({"x": x})["out"], expected)
    result = CliRunner().invoke(
        cli, ["predict", str(tmp_path / "run"), "--input", str(tmp_path / "data.csv")]
    )
    assert result.exit_code == 0, result.output
    first = float(result.output.splitlines()[1])
    assert 50 < first < 200  # the target's units (c is about 115), not a normalized value


def test_a_stratified_split_keeps_each_classs_share(tmp_path: Path) -> None:
    """With data.stratify, the test split holds half of every class, as data.test asks."""
    spec = graphnet.load_spec(folder(tmp_path, CLASSES))
    data = prepare(spec, streams(spec.seed))
    for split in (data.train, data.test):
        counts = np.bincount(split["y"][:, 0].astype(int), minlength=3)
        assert counts.tolist() == [10, 10, 10]


def test_class_names_round_trip(tmp_path: Path) -> None:
    """Names in (classes: auto), the sorted list in the run's spec.yaml, names out of predict."""
    spec = folder(tmp_path, CLASSES)
    history = graphnet.train(spec, out_dir=tmp_path / "run")
    assert history.test is not None and set(history.test) == {"loss", "accuracy"}
    saved = (tmp_path / "run" / "spec.yaml").read_text(encoding="utf-8")
    assert "classes: [blue, green, red]" in saved
    result = CliRunner().invoke(
        cli,
        ["predict", str(tmp_path / "run"), "--input", str(tmp_path / "data.csv"), "--proba"],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(result.output.splitlines()))
    assert {row["logits_class"] for row in rows} <= set(NAMES)
    for row in rows:
        p = [float(row[f"logits_p{k}"]) for k in range(3)]
        assert abs(sum(p) - 1) < 1e-12
        assert row["logits_class"] == sorted(NAMES)[int(np.argmax(p))]


def test_evaluate_on_a_file_equals_numpy(tmp_path: Path) -> None:
    """graphnet.evaluate on a file gives the loss and metric of the network's predictions
    computed in numpy (in the normalized units training reports)."""
    spec = folder(tmp_path, REGRESSION)
    graphnet.train(spec, out_dir=tmp_path / "run")
    scores = graphnet.evaluate(tmp_path / "run", tmp_path / "data.csv")
    weights = read_npz(tmp_path / "run" / "weights.npz", "weights")
    table = np.genfromtxt(tmp_path / "data.csv", delimiter=",", skip_header=1, usecols=(0, 1, 2))
    z = (table[:, :2] - weights["data/x/shift"]) / weights["data/x/scale"]
    prediction = z @ weights["out/W"] + weights["out/b"]
    target = (table[:, 2:] - weights["data/y/shift"]) / weights["data/y/scale"]
    assert scores["loss"] == pytest.approx(((prediction - target) ** 2).mean(), rel=1e-12)
    assert scores["mae"] == pytest.approx(np.abs(prediction - target).mean(), rel=1e-12)


def test_evaluate_prints_a_labelled_confusion_matrix(tmp_path: Path) -> None:
    """evaluate --confusion on the run's test split labels rows and columns with class names,
    and the counts add up to the split's size."""
    spec = folder(tmp_path, CLASSES)
    graphnet.train(spec, out_dir=tmp_path / "run")
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "run"), "--confusion"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("test: 30 samples")
    lines = result.output.splitlines()
    header = lines.index("confusion of logits vs y:") + 1
    assert lines[header].split()[-3:] == sorted(NAMES)
    counts = [int(v) for line in lines[header + 1 : header + 4] for v in line.split()[1:]]
    assert sum(counts) == 30


BAD = [
    (
        "classes-on-a-feature",
        CLASSES.replace("x: {shape: [2]}", "x: {shape: [2], classes: [a, b]}"),
        {},
        ["validate", "spec.yaml"],
        "spec.yaml:10: inputs.x.classes: classes on input 'x', which is not the target",
    ),
    (
        "label-not-in-classes",
        CLASSES.replace("classes: auto", "classes: [red, green, yellow]"),
        {},
        ["validate", "spec.yaml"],
        "data.csv:4: input 'y': label 'blue' of sample 2 is not one of its classes",
    ),
    (
        "bce-targets-outside",
        REGRESSION.replace("type: mse", "type: bce").replace(", y: minmax", ""),
        {},
        ["validate", "spec.yaml"],
        "data.csv:2: loss 'bce' of out, y: target ",
    ),
    (
        "class-id-out-of-range",
        CLASSES.replace("[kind]", "[b]")
        .replace(", classes: auto", "")
        .replace("stratify: y", "stratify: null"),
        {},
        ["validate", "spec.yaml"],
        "data.csv:2: loss 'cross_entropy' of logits, y: label ",
    ),
    (
        "shape-mismatch",
        REGRESSION.replace("x: {shape: [2]}", "x: {shape: [3]}"),
        {},
        ["validate", "spec.yaml"],
        "spec.yaml:9: inputs.x.shape: input 'x': per-sample shape [2]",
    ),
]


@pytest.mark.parametrize(
    ("spec", "files", "args", "expected"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_bad_data_exits_2_located(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spec: str,
    files: dict,
    args: list,
    expected: str,
) -> None:
    """A spec or data set that run would refuse, validate refuses first: exit 2, the message
    naming the file and line (of the spec, or of the data for a bad value)."""
    folder(tmp_path, spec, **files)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert expected in result.output, result.output


def test_a_test_file_missing_a_target_column_exits_2_naming_it(tmp_path: Path) -> None:
    """evaluate --input on a file without the target's column: exit 2 naming the column."""
    spec = folder(tmp_path, CLASSES)
    graphnet.train(spec, out_dir=tmp_path / "run")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["evaluate", str(tmp_path / "run"), "--input", str(tmp_path / "x.csv")]
    )
    assert result.exit_code == 2
    assert (
        "x.csv:1: input 'y' (data.columns.y of the run's spec): no column 'kind'" in result.output
    )


def test_api_errors_name_arguments(tmp_path: Path) -> None:
    """Training twice into one folder through the API names `out_dir`, not `--out`."""
    spec = folder(tmp_path, REGRESSION)
    graphnet.train(spec, out_dir=tmp_path / "run")
    with pytest.raises(graphnet.SpecError, match="out_dir: the folder holds another run"):
        graphnet.train(spec, out_dir=tmp_path / "run")


def test_an_npz_vector_fits_an_input_of_shape_one(tmp_path: Path) -> None:
    """An NPZ array of shape (n,) is the data of an input of shape [1]."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 2))
    np.savez(tmp_path / "d.npz", x=x, y=x.sum(axis=1))
    spec = REGRESSION.replace(
        "source: csv\n  path: data.csv\n  columns: {x: [a, b], y: [c]}",
        "source: npz\n  path: d.npz",
    )
    history = graphnet.train(folder(tmp_path, spec), out_dir=tmp_path / "run")
    assert len(history) == 3
