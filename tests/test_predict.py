"""`graphnet predict RUN_DIR --input FILE [--output FILE]`: a trained run's outputs for new inputs.

The numbers are those of the Python API's `Network.predict`, bit for bit, whether written as
CSV (full precision) or NPZ; a CSV is read with the spec's own csv column mapping or with
`<input>_<i>` columns; bad files are located errors (exit 2, no traceback).
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

import graphnet
from graphnet.cli import cli

ROOT = Path(__file__).resolve().parents[1]

# x has two axes (flattened to x_0..x_5 in a CSV); two outputs, one of them not the loss's.
MULTI = """\
name: multi
data: {source: npz, path: data.npz}
inputs:
  x: {shape: [2, 3]}
  y: {shape: [2, 1]}
nodes:
  - {name: h, type: dense, inputs: [x], units: 4}
  - {name: a, type: tanh, inputs: [h]}
  - {name: out, type: dense, inputs: [a], units: 1}
  - {name: probs, type: softmax, inputs: [h]}
loss: {type: mse, inputs: [out, y]}
outputs: [out, probs]
train: {epochs: 2, batch_size: 10}
"""

# One-element inputs named `<input>` in a CSV, and a target the outputs do not need.
SMALL = """\
name: small
data: {source: npz, path: small.npz}
inputs:
  a: {shape: [1]}
  b: {shape: [1]}
  y: {shape: [1]}
nodes:
  - {name: ab, type: concat, inputs: [a, b]}
  - {name: out, type: dense, inputs: [ab], units: 1}
loss: {type: mse, inputs: [out, y]}
train: {epochs: 1}
"""


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def read_csv(text: str) -> tuple[list[str], np.ndarray]:
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], np.array([[float(v) for v in row] for row in rows[1:]])


def write_csv(path: Path, header: list[str], values: np.ndarray) -> Path:
    lines = [",".join(header)] + [",".join(repr(float(v)) for v in row) for row in values]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with trained runs `multi`, `small` and `two_inputs` (specs/two_inputs.yaml)."""
    base = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(7)
    np.savez(base / "data.npz", x=rng.normal(size=(30, 2, 3)), y=rng.normal(size=(30, 2, 1)))
    np.savez(
        base / "small.npz", a=rng.random((20, 1)), b=rng.random((20, 1)), y=rng.random((20, 1))
    )
    (base / "multi.yaml").write_text(MULTI, encoding="utf-8")
    (base / "small.yaml").write_text(SMALL, encoding="utf-8")
    graphnet.train(graphnet.load_spec(base / "multi.yaml"), base / "multi")
    graphnet.train(graphnet.load_spec(base / "small.yaml"), base / "small")
    np.savez(
        base / "mapped.npz", first=rng.random((20, 1)), b=rng.random((20, 1)), y=rng.random((20, 1))
    )
    mapped = {"data.path": "mapped.npz", "data.arrays": {"a": "first"}}
    graphnet.train(graphnet.load_spec(base / "small.yaml", mapped), base / "mapped")
    two = graphnet.load_spec(ROOT / "specs" / "two_inputs.yaml", {"train.epochs": 1})
    graphnet.train(two, base / "two_inputs")
    return base


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(5, 2, 3))


def test_csv_output_is_the_python_apis_predict_bit_for_bit(runs, x, tmp_path):
    """CSV on stdout: header `<output>_<i>`, one row per input row, the API's numbers exactly."""
    source = write_csv(tmp_path / "in.csv", [f"x_{i}" for i in range(6)], x.reshape(5, 6))
    result = invoke("predict", runs / "multi", "--input", source)
    assert result.exit_code == 0, result.output
    header, values = read_csv(result.output)
    assert header == ["out_0", "out_1", *(f"probs_{i}" for i in range(8))]
    expected = graphnet.load_run(runs / "multi").predict({"x": x})
    assert values.shape == (5, 10)
    assert np.array_equal(values[:, :2], expected["out"].reshape(5, 2))
    assert np.array_equal(values[:, 2:], expected["probs"].reshape(5, 8))


def test_npz_output_holds_the_apis_arrays(runs, x, tmp_path):
    """`--output FILE.npz` writes one array per output, keyed by its name, with its shape."""
    np.savez(tmp_path / "in.npz", x=x)
    result = invoke(
        "predict", runs / "multi", "--input", tmp_path / "in.npz", "--output", tmp_path / "p.npz"
    )
    assert result.exit_code == 0, result.output
    assert "wrote 5 predictions of out, probs" in result.output
    expected = graphnet.load_run(runs / "multi").predict({"x": x})
    with np.load(tmp_path / "p.npz") as archive:
        assert sorted(archive.files) == ["out", "probs"]
        for name in ("out", "probs"):
            assert archive[name].shape == expected[name].shape
            assert np.array_equal(archive[name], expected[name])


def test_csv_and_npz_inputs_and_outputs_agree(runs, x, tmp_path):
    """The same inputs as CSV or NPZ give the same file; --output FILE.csv is stdout's text."""
    np.savez(tmp_path / "in.npz", x=x)
    source = write_csv(tmp_path / "in.csv", [f"x_{i}" for i in range(6)], x.reshape(5, 6))
    printed = invoke("predict", runs / "multi", "--input", tmp_path / "in.npz").output
    assert (
        invoke(
            "predict", runs / "multi", "--input", source, "--output", tmp_path / "p.csv"
        ).exit_code
        == 0
    )
    assert (tmp_path / "p.csv").read_text(encoding="utf-8") == printed


def test_a_csv_spec_predicts_from_its_own_csv(runs):
    """specs/two_inputs.yaml maps columns x0, x1 to inputs a, b: its own CSV (with the target
    column y, not needed) predicts, row for row, what the API gives for those columns."""
    data = ROOT / "specs" / "data" / "product.csv"
    result = invoke("predict", runs / "two_inputs", "--input", data)
    assert result.exit_code == 0, result.output
    header, values = read_csv(result.output)
    table = np.loadtxt(data, delimiter=",", skiprows=1)
    expected = graphnet.load_run(runs / "two_inputs").predict(
        {"a": table[:, :1], "b": table[:, 1:2]}
    )
    assert header == ["out_0"]
    assert np.array_equal(values, expected["out"])


def test_one_element_inputs_may_be_named_plainly_and_targets_are_not_needed(runs, tmp_path):
    """Columns `a` and `b` (or `a_0`, `b_0`) feed inputs of shape [1]; no `y` column needed."""
    values = np.array([[0.25, 0.5], [1.0, -2.0]])
    expected = graphnet.load_run(runs / "small").predict({"a": values[:, :1], "b": values[:, 1:]})
    for header in (["b", "a"], ["a_0", "b_0"]):
        columns = values if header[0].startswith("a") else values[:, ::-1]
        source = write_csv(tmp_path / "in.csv", header, columns)
        result = invoke("predict", runs / "small", "--input", source)
        assert result.exit_code == 0, result.output
        assert np.array_equal(read_csv(result.output)[1], expected["out"])


def test_an_npz_specs_array_mapping_is_used(runs, tmp_path):
    """With an npz source mapping input `a` to array `first`, an input NPZ uses that key too."""
    a, b = np.array([[0.5], [2.0]]), np.array([[1.5], [-1.0]])
    np.savez(tmp_path / "in.npz", first=a, b=b)
    result = invoke("predict", runs / "mapped", "--input", tmp_path / "in.npz")
    assert result.exit_code == 0, result.output
    expected = graphnet.load_run(runs / "mapped").predict({"a": a, "b": b})
    assert np.array_equal(read_csv(result.output)[1], expected["out"])


def test_a_header_without_rows_predicts_nothing(runs, tmp_path):
    """A CSV with only its header gives only the output header."""
    (tmp_path / "in.csv").write_text("a,b\n", encoding="utf-8")
    result = invoke("predict", runs / "small", "--input", tmp_path / "in.csv")
    assert result.exit_code == 0, result.output
    assert result.output == "out_0\n"


X_HEADER = ",".join(f"x_{i}" for i in range(6))
X_ROW = ",".join(["0.5"] * 6)


@pytest.mark.parametrize(
    ("name", "text", "expected_error"),
    [
        ("missing.csv", "x_0,x_1\n1,2\n", "missing.csv:1: input 'x' of shape [2, 3]"),
        ("missing.csv", "x_0,x_1\n1,2\n", "no column 'x_2' in the header"),
        (
            "cell.csv",
            f"{X_HEADER}\n{X_ROW}\n{X_ROW[:-4]},abc\n",
            "cell.csv:3: column 'x_5': 'abc' is not a number",
        ),
        (
            "short.csv",
            f"{X_HEADER}\n{X_ROW}\n{X_ROW}\n0.5,0.5\n",
            "short.csv:4: 2 fields, the header has 6",
        ),
        (
            "wide.csv",
            f"{X_HEADER},x_6\n{X_ROW},1\n",
            "wide.csv:1: input 'x' of shape [2, 3] (columns x_0",
        ),
        (
            "wide.csv",
            f"{X_HEADER},x_6\n{X_ROW},1\n",
            "takes 6 column(s), but the header also has x_6",
        ),
        (
            "nan.csv",
            f"{X_HEADER}\n{X_ROW[:-4]},nan\n",
            "nan.csv:2: column 'x_5': 'nan' is not a finite number",
        ),
        ("empty.csv", "", "empty.csv: the CSV file is empty"),
    ],
    ids=[
        "missing-where",
        "missing-what",
        "cell",
        "short",
        "wide-where",
        "wide-what",
        "nan",
        "empty",
    ],
)
def test_bad_csv_files_are_located_errors(runs, tmp_path, name, text, expected_error):
    """Missing columns, wrong widths and bad cells name file:line and the column; exit 2."""
    (tmp_path / name).write_text(text, encoding="utf-8")
    result = invoke("predict", runs / "multi", "--input", tmp_path / name)
    assert result.exit_code == 2
    assert expected_error in result.output
    assert "Traceback" not in result.output


def test_the_csv_sources_mapping_is_required_and_named(runs, tmp_path):
    """With a csv source, its columns are the ones read; a missing one names the mapping."""
    (tmp_path / "in.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    result = invoke("predict", runs / "two_inputs", "--input", tmp_path / "in.csv")
    assert result.exit_code == 2
    assert "in.csv:1: input 'a' (data.columns.a of the run's spec): no column 'x0'" in result.output


@pytest.mark.parametrize(
    ("arrays", "expected_error"),
    [
        ({"y": np.zeros((3, 2, 1))}, "no array 'x' for input 'x'; the file holds: y"),
        ({"x": np.zeros((3, 6))}, "array 'x' has shape [3, 6]; input 'x' needs [samples, 2, 3]"),
        ({"x": np.full((3, 2, 3), np.inf)}, "array 'x': sample 0 holds inf"),
    ],
)
def test_bad_npz_files_are_located_errors(runs, tmp_path, arrays, expected_error):
    """An NPZ input must hold each needed input by name with its per-sample shape."""
    np.savez(tmp_path / "in.npz", **arrays)
    result = invoke("predict", runs / "multi", "--input", tmp_path / "in.npz")
    assert result.exit_code == 2
    assert f"in.npz: {expected_error}" in result.output


@pytest.mark.parametrize(
    ("args", "expected_error"),
    [
        (["{runs}/multi", "--input", "{tmp}/nothing.csv"], "nothing.csv: input file not found"),
        (["{tmp}", "--input", "{tmp}/in.csv"], ": not a run folder: it has no spec.yaml"),
        (["{tmp}/none", "--input", "{tmp}/in.csv"], "none: run folder not found"),
        (
            ["{runs}/multi", "--input", "{tmp}/in.csv", "--output", "{tmp}/p.json"],
            "p.json: --output: cannot tell the format from '.json'",
        ),
        (
            ["{runs}/multi", "--input", "{tmp}/in.csv", "--output", "{tmp}/in.csv"],
            "--output is the input file",
        ),
        (["{runs}/multi"], "Missing option '--input'"),
    ],
)
def test_bad_command_lines_exit_2(runs, tmp_path, args, expected_error):
    """Missing files, a folder that holds no run and an unknown output format exit 2."""
    (tmp_path / "in.csv").write_text(f"{X_HEADER}\n{X_ROW}\n", encoding="utf-8")
    result = invoke("predict", *(a.format(runs=runs, tmp=tmp_path) for a in args))
    assert result.exit_code == 2
    assert expected_error in result.output
    assert not (tmp_path / "p.json").exists()


def test_predict_runs_as_a_real_process(runs, x, tmp_path):
    """The installed `graphnet predict` writes the same CSV as the API's numbers."""
    source = write_csv(tmp_path / "in.csv", [f"x_{i}" for i in range(6)], x.reshape(5, 6))
    script = shutil.which("graphnet", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "graphnet"]
    process = subprocess.run(
        [*command, "predict", str(runs / "multi"), "--input", str(source)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert process.returncode == 0, process.stderr
    expected = graphnet.load_run(runs / "multi").predict({"x": x})
    assert np.array_equal(read_csv(process.stdout)[1][:, :2], expected["out"].reshape(5, 2))


class BrokenReader(graphnet.DataSource):
    """A data source whose `read_inputs` returns a list instead of a dict of arrays."""

    type = "test_broken_reader"

    def load(self, base_dir, rng):
        return {"a": np.zeros((4, 1)), "b": np.zeros((4, 1)), "y": np.zeros((4, 1))}

    def read_inputs(self, path, shapes):
        return [np.zeros((2, 1))]


class BrokenReaderPlugin:
    @graphnet.hookimpl
    def graphnet_data_sources(self):
        return [BrokenReader]


def test_a_sources_reader_that_breaks_its_contract_is_named(tmp_path):
    """A data source's `read_inputs` returning what is not a dict fails naming the source and
    the method (exit 1)."""
    from graphnet.registry import get_registry

    registry = get_registry()
    registry.register(BrokenReaderPlugin(), "test-broken-reader")
    try:
        spec = tmp_path / "spec.yaml"
        spec.write_text(
            SMALL.replace("{source: npz, path: small.npz}", "{source: test_broken_reader}")
        )
        graphnet.train(graphnet.load_spec(spec), tmp_path / "run")
        (tmp_path / "in.csv").write_text("a,b\n1,2\n", encoding="utf-8")
        result = invoke("predict", tmp_path / "run", "--input", tmp_path / "in.csv")
    finally:
        registry.unregister("test-broken-reader")
    assert result.exit_code == 1
    assert "data source 'test_broken_reader': read_inputs returned list" in result.output
