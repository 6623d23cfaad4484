"""`graphnet validate SPEC --print`: the resolved spec as YAML, each `--set` value marked.

The first line still starts with `ok`; the rest is YAML (what a run saves as spec.yaml, with
defaults filled in) and every value an override set ends with `# from --set KEY=VALUE`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import SEED, invoke

import graphnet

OVERRIDES = [
    "train.epochs=3",
    "nodes.hidden.units=8",
    "train.optimizer.lr=0.1",
    "train.metrics=[mae]",
    "nodes.out.inputs=act",
]


def with_sets(*items: str) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def uncommented(text: str) -> str:
    return re.sub(r"  # from --set .*$", "", text, flags=re.M)


def test_first_line_is_ok_and_the_rest_is_the_resolved_spec():
    """Defaults are filled in: the YAML is the spec graphnet resolved, as plain data."""
    result = invoke("validate", SEED, "--print", *with_sets(*OVERRIDES))
    assert result.exit_code == 0, result.output
    first, rest = result.output.split("\n", 1)
    assert first.startswith(f"ok: {SEED}: 3 nodes")
    expected = graphnet.load_spec(SEED, OVERRIDES).to_dict()
    assert yaml.safe_load(rest) == expected
    assert expected["nodes"][0]["bias"] is True  # a default the file does not write


@pytest.mark.parametrize(
    ("line", "origin"),
    [
        ("  epochs: 3", "train.epochs=3"),
        ("  units: 8", "nodes.hidden.units=8"),
        ("    lr: 0.1", "train.optimizer.lr=0.1"),
        ("  metrics: [mae]", "train.metrics=[mae]"),
        ("  inputs: [act]", "nodes.out.inputs=act"),
    ],
)
def test_each_override_says_where_it_came_from(line, origin):
    """A value set with --set ends with `# from --set KEY=VALUE`, as written on the command line."""
    output = invoke("validate", SEED, "--print", *with_sets(*OVERRIDES)).output
    assert f"{line}  # from --set {origin}\n" in output


def test_only_overridden_values_are_marked():
    """One comment per override, none without --set."""
    output = invoke("validate", SEED, "--print", *with_sets(*OVERRIDES)).output
    assert output.count("# from --set") == len(OVERRIDES)
    plain = invoke("validate", SEED, "--print").output
    assert "#" not in plain
    assert uncommented(output).count("\n") == plain.count("\n")


def test_the_printed_spec_is_what_a_run_saves(tmp_path):
    """Without its comments, the YAML is the run folder's spec.yaml, byte for byte."""
    items = ["train.epochs=1", "nodes.hidden.units=3"]
    output = invoke("validate", SEED, "--print", *with_sets(*items)).output
    result = invoke("run", SEED, "--out", tmp_path / "run", "--quiet", *with_sets(*items))
    assert result.exit_code == 0, result.output
    saved = (tmp_path / "run" / "spec.yaml").read_text(encoding="utf-8")
    assert uncommented(output.split("\n", 1)[1]) == saved


def test_an_override_that_sets_a_default_away_is_listed_at_the_end(tmp_path):
    """`--set outputs=null` leaves no key to mark; a closing comment names it."""
    output = invoke("validate", SEED, "--print", "--set", "outputs=null").output
    assert output.endswith("# --set outputs=null: not shown, it sets the default\n")


def test_json_specs_print_as_yaml_too(tmp_path):
    """A JSON spec is printed as the same YAML as its YAML twin."""
    data = yaml.safe_load(SEED.read_text(encoding="utf-8"))
    spec = tmp_path / "seed.json"
    spec.write_text(json.dumps(data), encoding="utf-8")
    printed = invoke("validate", spec, "--print", "--set", "train.epochs=2").output
    twin = invoke("validate", SEED, "--print", "--set", "train.epochs=2").output
    assert printed.split("\n", 1)[1] == twin.split("\n", 1)[1]
    assert "  epochs: 2  # from --set train.epochs=2\n" in printed


def test_a_bad_override_prints_no_spec():
    """An invalid spec is an error (exit 2) and nothing is printed on stdout."""
    result = invoke("validate", str(SEED), "--print", "--set", "nodes.hidden.units=0")
    assert result.exit_code == 2
    assert "--set nodes.hidden.units=0: nodes[0].units" in result.output
    assert result.stdout == ""


def test_validate_print_runs_as_a_real_process():
    """The installed `graphnet validate --print` prints `ok` then YAML."""
    script = shutil.which("graphnet", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "graphnet"]
    process = subprocess.run(
        [*command, "validate", str(SEED), "--print", "--set", "train.epochs=3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert process.returncode == 0, process.stderr
    first, rest = process.stdout.split("\n", 1)
    assert first.startswith("ok")
    assert yaml.safe_load(rest)["train"]["epochs"] == 3
    assert "  epochs: 3  # from --set train.epochs=3\n" in rest
