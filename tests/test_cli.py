"""The command line: each command's output, the run folder options, and errors as messages.

Errors exit 2 (1 for a run that failed), say what and where, and never show a traceback
unless `--debug` asks for one.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import Result
from conftest import BUILT_INS, SEED, SMALL_SPEC, graphnet_process, invoke, read_npz, rows

import graphnet

GOOD = SMALL_SPEC

# Broken specs, one per error class. Lines: inputs 1, x 2, y 3, nodes 4, hidden 5, out 6, loss 7.
SPECS = {
    "good.yaml": GOOD,
    "bad_key.yaml": GOOD.replace("units: 4}", "units: 4, unitz: 2}"),
    "bad_shape.yaml": GOOD.replace("units: 1}", "units: 3}"),
    "bad_type.yaml": GOOD.replace("type: dense, inputs: [x]", "type: dens, inputs: [x]"),
    "bad_yaml.yaml": GOOD.replace("inputs: [x]", "inputs: [x"),
    "bad_data.yaml": "data: {source: csv, path: missing.csv, columns: {x: [a, b], y: [c]}}\n"
    + GOOD,
    "bad_cell.yaml": "data: {source: csv, path: cells.csv, columns: {x: [a, b], y: [c]}}\n" + GOOD,
}


@pytest.fixture
def specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding the specs above (and cells.csv); it is also the working directory."""
    for name, text in SPECS.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "cells.csv").write_text("a,b,c\n1,2,3\n4,oops,6\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # a run without --out must not write into the repository
    monkeypatch.delenv("GRAPHNET_PLUGINS", raising=False)
    return tmp_path


def run_seed(out: Path, *extra: str) -> Result:
    return invoke("run", SEED, "--set", "train.epochs=3", "--out", out, *extra)


# -- validate, summary, plugins ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected", "expected_error"),
    [
        (["validate", SEED], f"ok: {SEED}: 3 nodes, 2 inputs, 1 loss\n", ""),
        (["validate", SEED, "--set", "nodes.hidden.units=8"], "ok: ", ""),
        (["validate", "good.yaml"], "ok: good.yaml: 2 nodes, 2 inputs, 1 loss\n", ""),
    ],
)
def test_validate_prints_one_ok_line(specs, args, expected, expected_error):
    """`graphnet validate` prints one line starting with `ok` for a valid spec."""
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(expected)
    assert len(result.stdout.splitlines()) == 1
    assert result.stderr == expected_error


def test_summary_is_a_table_of_nodes_with_totals(specs):
    """`graphnet summary` shows node, type, inputs, output shape and parameters, then totals."""
    result = invoke("summary", SEED)
    assert result.exit_code == 0, result.output
    table = rows(result.stdout)
    assert table[0] == ["node", "type", "inputs", "output shape", "parameters"]
    assert ["hidden", "dense", "x", "[5]", "15"] in table
    assert ["act", "relu", "hidden", "[5]", "0"] in table
    assert ["out", "dense", "act", "[1]", "6"] in table
    assert table[-1][0].startswith("total: 3 nodes, 21 parameters")


def test_summary_follows_set(specs):
    """`summary --set` shows the network as overridden."""
    result = invoke("summary", SEED, "--set", "nodes.hidden.units=8")
    assert result.exit_code == 0, result.output
    assert ["hidden", "dense", "x", "[8]", "24"] in rows(result.stdout)
    assert "total: 3 nodes, 33 parameters" in result.stdout


@pytest.mark.parametrize(("kind", "name"), BUILT_INS)
def test_plugins_lists_the_built_ins_with_their_package(specs, kind, name):
    """`graphnet plugins` lists every built-in with kind, type, package `graphnet` and a summary."""
    result = invoke("plugins")
    assert result.exit_code == 0, result.output
    table = rows(result.stdout)
    assert table[0] == ["kind", "type", "package", "description"]
    row = next(r for r in table if r[:2] == [kind, name])
    assert row[2] == "graphnet"
    assert row[3]


# -- run ---------------------------------------------------------------------------------------


def test_run_writes_the_run_folder_and_a_summary(specs):
    """`graphnet run` trains, writes spec, weights, checkpoint and metrics, and ends with `done:`."""
    out = specs / "run"
    result = run_seed(out)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()  # progress on stderr, the summary on stdout
    assert lines[0].startswith("training 21 parameters on 1000 samples for 3 epochs")
    assert [line.split("  ")[0] for line in lines[1:4]] == [
        "epoch 1/3",
        "epoch 2/3",
        "epoch 3/3",
    ]
    assert lines[-1].startswith("done: epoch 3  loss ")
    assert lines[-1].endswith(f"run folder {out}")
    for name in ("spec.yaml", "weights.npz", "checkpoint.npz", "metrics.csv"):
        assert (out / name).is_file(), name
    saved = yaml.safe_load((out / "spec.yaml").read_text(encoding="utf-8"))
    assert saved["train"]["epochs"] == 3
    assert sorted(read_npz(out / "weights.npz")) == ["hidden/W", "hidden/b", "out/W", "out/b"]
    assert len((out / "metrics.csv").read_text(encoding="utf-8").splitlines()) == 4


def test_run_defaults_to_runs_name(specs):
    """Without --out, the run goes to runs/<name> in the working directory."""
    result = invoke("run", SEED, "--set", "train.epochs=1", "--quiet")
    assert result.exit_code == 0, result.output
    assert (specs / "runs" / "seed-product" / "weights.npz").is_file()


def test_run_quiet_prints_only_the_summary(specs):
    """`--quiet` prints the final `done:` line and nothing else."""
    result = run_seed(specs / "run", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [result.stdout.strip()]
    assert result.stdout.startswith("done: epoch 3")


def test_run_weights_starts_from_given_parameters(specs):
    """`--weights NPZ` starts from those parameters: with no epochs, they come out unchanged."""
    first = run_seed(specs / "first", "--quiet")
    assert first.exit_code == 0, first.output
    result = invoke(
        "run",
        SEED,
        "--set",
        "train.epochs=0",
        "--out",
        specs / "second",
        "--weights",
        specs / "first" / "weights.npz",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith("done: nothing to train")
    given, saved = (
        read_npz(specs / "first" / "weights.npz"),
        read_npz(specs / "second" / "weights.npz"),
    )
    assert given.keys() == saved.keys()
    for key in given:
        np.testing.assert_array_equal(given[key], saved[key])


def test_run_weights_changes_the_result(specs):
    """Training from given weights differs from training from the initialiser."""
    assert run_seed(specs / "first", "--quiet").exit_code == 0
    fresh = run_seed(specs / "fresh", "--quiet")
    warm = run_seed(specs / "warm", "--quiet", "--weights", str(specs / "first" / "weights.npz"))
    assert warm.exit_code == 0, warm.output
    assert fresh.stdout.split("(")[0] != warm.stdout.split("(")[0]


def test_run_refuses_a_folder_holding_another_run(specs):
    """A second run into the same folder is refused (exit 2) and the old run is untouched."""
    out = specs / "run"
    assert run_seed(out, "--quiet").exit_code == 0
    before = (out / "weights.npz").read_bytes()
    result = run_seed(out)
    assert result.exit_code == 2
    assert f"error: {out}: --out: the folder holds another run" in result.stderr
    assert "--resume" in result.stderr
    assert (out / "weights.npz").read_bytes() == before


def test_run_resume_continues_the_run(specs):
    """`--resume` continues from the checkpoint; metrics.csv has every epoch exactly once."""
    out = specs / "run"
    assert run_seed(out, "--quiet").exit_code == 0
    result = invoke("run", SEED, "--set", "train.epochs=5", "--out", out, "--resume")
    assert result.exit_code == 0, result.output
    assert "resuming at epoch 4" in result.stderr  # progress goes to stderr
    assert "epoch 4/5" in result.stderr
    assert "epoch 1/5" not in result.stderr
    assert result.stdout.splitlines()[-1].startswith("done: epoch 5")
    epochs = [line.split(",")[0] for line in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2", "3", "4", "5"]


def test_run_resume_refuses_a_different_spec(specs):
    """`--resume` with a spec that differs in more than train.epochs names the difference."""
    out = specs / "run"
    assert run_seed(out, "--quiet").exit_code == 0
    result = run_seed(out, "--resume", "--set", "train.optimizer.lr=0.1")
    assert result.exit_code == 2
    assert "train.optimizer.lr: 0.05 in the run, 0.1 now" in result.stderr
    assert "Traceback" not in result.output


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected", "expected_error"),
    [
        (
            ["validate", "bad_key.yaml"],
            "",
            "error: bad_key.yaml:5: nodes[0].unitz: unknown option 'unitz' for layer type "
            "'dense' (did you mean 'units'",
        ),
        (
            ["run", "bad_key.yaml"],
            "",
            "error: bad_key.yaml:5: nodes[0].unitz: unknown option 'unitz'",
        ),
        (
            ["summary", "bad_yaml.yaml"],
            "",
            "error: bad_yaml.yaml:5:",
        ),
        (
            ["validate", "good.yaml", "--set", "nodes.hidden.units=five"],
            "",
            "error: --set nodes.hidden.units=five: nodes[0].units: input should be a valid integer",
        ),
        (
            ["validate", "bad_shape.yaml"],
            "",
            "error: bad_shape.yaml:7: loss[0].inputs: loss 'mse': prediction [3] and target [1]",
        ),
        (
            ["summary", "bad_type.yaml"],
            "",
            "error: bad_type.yaml:5: nodes[0].type: unknown layer type 'dens' "
            "(did you mean 'dense'?)",
        ),
        (
            ["run", "bad_data.yaml", "--out", "run"],
            "",
            "missing.csv: data file not found",
        ),
        (
            ["run", "bad_cell.yaml", "--out", "run"],
            "",
            "cells.csv:3: column 'b': 'oops' is not a number",
        ),
        (
            ["run", "good.yaml", "--out", "run"],
            "",
            "error: good.yaml:1: the spec has no `data:` section; training needs one",
        ),
        (
            ["validate", "missing.yaml"],
            "",
            "error: missing.yaml: spec file not found",
        ),
        (
            ["run", SEED, "--out", "run", "--weights", "missing.npz"],
            "",
            "error: missing.npz: weights file not found",
        ),
    ],
    ids=[
        "spec-validate",
        "spec-run",
        "yaml-syntax",
        "spec-set",
        "shape",
        "plugin",
        "data-missing",
        "data-cell",
        "no-data",
        "no-file",
        "no-weights",
    ],
)
def test_errors_exit_2_with_a_located_message(specs, args, expected, expected_error):
    """Bad specs, shapes, plugins and data exit 2 with `error: where: what` and no traceback."""
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == expected
    assert expected_error in result.stderr
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, graphnet.GraphnetError)


def test_error_classes_map_to_exit_statuses(specs):
    """Each error class of the hierarchy has the exit status DESIGN.md gives it."""
    for error in (graphnet.SpecError, graphnet.ShapeError, graphnet.PluginError):
        assert error.exit_code == 2
    assert graphnet.DataError.exit_code == 2
    assert graphnet.TrainingError.exit_code == 1


def test_diverged_run_exits_1_naming_the_epoch(specs):
    """A run whose loss becomes inf or NaN fails with exit 1, names the epoch, keeps finite weights."""
    out = specs / "run"
    result = invoke(
        "run",
        SEED,
        "--out",
        out,
        "--quiet",
        "--set",
        "train.epochs=20",
        "--set",
        "train.optimizer.lr=1e30",
    )
    assert result.exit_code == 1, result.output
    assert re.search(r"error: the loss became (inf|nan) in epoch \d+, batch 1", result.stderr)
    assert "lower train.optimizer.lr" in result.stderr
    assert "Traceback" not in result.output
    weights = read_npz(out / "weights.npz")
    assert all(np.isfinite(array).all() for array in weights.values())


@pytest.mark.parametrize(
    ("args", "expected_error"),
    [
        (["run"], "Error: Missing argument 'SPEC'."),
        (["run", SEED, "--bogus"], "Error: No such option '--bogus'."),
        (["validate", SEED, "--set"], "Error: Option '--set' requires an argument."),
        (["frobnicate"], "Error: No such command 'frobnicate'."),
    ],
)
def test_usage_errors_exit_2(specs, args, expected_error):
    """A bad command line is click's usage error: exit 2, saying what is wrong."""
    result = invoke(*args)
    assert result.exit_code == 2
    assert expected_error in result.stderr
    assert "Traceback" not in result.output


def test_debug_reraises_the_error(specs):
    """`--debug` lets the error through to show its traceback (after the command or before it)."""
    for args in (["validate", "bad_key.yaml", "--debug"], ["--debug", "validate", "bad_key.yaml"]):
        result = invoke(*args)
        assert isinstance(result.exception, graphnet.SpecError), result.output
        assert "unknown option 'unitz'" in str(result.exception)


def test_debug_shows_a_traceback_in_a_real_process(specs):
    """Run as a process, `--debug` prints the traceback; without it there is none."""
    plain = graphnet_process("validate", "bad_key.yaml", cwd=specs)
    assert plain.returncode == 2
    assert plain.stderr.startswith("error: bad_key.yaml:5: nodes[0].unitz")
    assert "Traceback" not in plain.stderr
    debug = graphnet_process("validate", "bad_key.yaml", "--debug", cwd=specs)
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "graphnet.errors.SpecError" in debug.stderr


def test_python_dash_m_graphnet_help(tmp_path):
    """`python -m graphnet --help` works and lists the commands."""
    result = graphnet_process("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: graphnet ")
    for command in ("run", "validate", "summary", "plugins"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.MULTILINE), command


def test_version(specs):
    """`graphnet --version` names the installed version."""
    result = invoke("--version")
    assert result.exit_code == 0
    assert graphnet.__version__ in result.stdout
