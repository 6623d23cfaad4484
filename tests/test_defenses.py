"""What an attacker or a careless user cannot do: write outside `runs/`, blow up memory through
`--set`, run twice into one folder, resume something that is not a run, or lose epochs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import graphnet
from graphnet.cli import cli

SPEC = {
    "seed": 1,
    "data": {"source": "synthetic", "function": "product", "samples": 32},
    "inputs": {"x": {"shape": [2]}, "y": {"shape": [1]}},
    "nodes": [
        {"name": "h", "type": "dense", "inputs": ["x"], "units": 4},
        {"name": "out", "type": "dense", "inputs": ["h"], "units": 1},
    ],
    "loss": {"type": "mse", "inputs": ["out", "y"]},
    "train": {"epochs": 3, "batch_size": 8, "checkpoint_every": 0},
}


def write(folder: Path, spec: dict | None = None, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(spec or SPEC, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "name", ["../../escaped", "/somewhere/else", "a\nb", "\x1b[31mred", "a\x00b", "n" * 300]
)
def test_a_spec_name_that_is_not_a_name_is_refused(tmp_path, monkeypatch, name):
    """`name` follows the node-name rule, in the file and through --set: exit 2, located, the
    value shown escaped and short, nothing written."""
    monkeypatch.chdir(tmp_path)
    for args in (
        ["run", str(write(tmp_path, {**SPEC, "name": name}, "named.yaml"))],
        ["run", str(write(tmp_path)), "--set", f"name={name}"],
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert "is not a valid name" in result.output or "--set" in result.output
        assert "\x1b" not in result.output and "\x00" not in result.output
        assert len(result.output) < 400
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path.parent / "escaped").exists()


def test_a_file_stem_that_is_no_name_gives_a_valid_default_name(tmp_path, monkeypatch):
    """A spec file named `my spec.yaml` trains into runs/my_spec."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "my spec.yaml"
    path.write_text(yaml.safe_dump(SPEC), encoding="utf-8")
    assert graphnet.load_spec(path).name == "my_spec"


def test_set_alias_bombs_and_deep_values_are_refused_quickly(tmp_path):
    """A few hundred bytes of nested aliases in --set, or a value nested 990 deep: a short
    message and exit 2 within seconds, never a hang or a RecursionError."""
    bomb = (
        "["
        + ",".join(f"&l{i} [" + ",".join([f"*l{i - 1}" if i else "x"] * 10) + "]" for i in range(9))
        + "]"
    )
    for value in (bomb, "[" * 990 + "]" * 990):
        started = time.perf_counter()
        result = CliRunner().invoke(
            cli, ["validate", str(write(tmp_path)), "--set", f"seed={value}"]
        )
        assert time.perf_counter() - started < 20
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: --set seed=")
        assert len(result.output) < 400


def test_a_second_run_on_a_locked_folder_is_refused_naming_the_process(tmp_path):
    """While a run writes to a folder, a second `graphnet run` on it exits 2 at once, naming the
    process that holds it; the first run is untouched."""
    import fcntl

    folder = tmp_path / "run"
    folder.mkdir()
    with open(folder / ".graphnet.lock", "w") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        handle.write("4242")
        handle.flush()
        result = CliRunner().invoke(
            cli, ["run", str(write(tmp_path)), "--out", str(folder), "--resume"]
        )
    assert result.exit_code == 2, result.output
    assert "process 4242" in result.output
    assert not (folder / "spec.yaml").exists()


def test_two_runs_started_together_on_one_folder_never_both_write(tmp_path):
    """Two `graphnet run --out SAME` started together: one finishes, the other is refused
    (exit 2); metrics.csv holds every epoch once."""
    spec = write(tmp_path, {**SPEC, "train": {**SPEC["train"], "epochs": 30}})
    command = [sys.executable, "-m", "graphnet", "run", str(spec), "--out", str(tmp_path / "run")]
    processes = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    codes = sorted(p.wait(timeout=120) for p in processes)
    assert codes == [0, 2]
    epochs = [
        line.split(",")[0]
        for line in (tmp_path / "run" / "metrics.csv").read_text().splitlines()[1:]
    ]
    assert epochs == [str(e) for e in range(1, 31)]


def test_resume_refuses_a_folder_that_is_not_a_run(tmp_path):
    """--resume on a folder of unrelated files, or on a run whose spec.yaml was deleted, exits 2
    and touches nothing."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "metrics.csv").write_text("my,own\n1,2\n")
    result = CliRunner().invoke(
        cli, ["run", str(write(tmp_path)), "--out", str(folder), "--resume"]
    )
    assert result.exit_code == 2, result.output
    assert "not a run folder" in result.output
    assert sorted(p.name for p in folder.iterdir()) == ["metrics.csv"]
    assert (folder / "metrics.csv").read_text() == "my,own\n1,2\n"


def test_resume_with_fewer_epochs_than_done_changes_nothing(tmp_path):
    """A finished 3-epoch run resumed with train.epochs=2 is refused and keeps its files; with
    the same epochs it says it is complete and changes no weight."""
    spec = write(tmp_path)
    out = tmp_path / "run"
    assert CliRunner().invoke(cli, ["run", str(spec), "--out", str(out), "-q"]).exit_code == 0
    before = {
        p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".yaml", ".npz", ".csv")
    }
    result = CliRunner().invoke(
        cli, ["run", str(spec), "--out", str(out), "--set", "train.epochs=2", "--resume"]
    )
    assert result.exit_code == 2, result.output
    assert "has done 3 epochs" in result.output
    result = CliRunner().invoke(cli, ["run", str(spec), "--out", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    assert "complete already" in result.output
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".yaml", ".npz", ".csv")}
    assert after == before


def test_a_kill_between_the_metrics_and_the_checkpoint_loses_no_epoch(tmp_path, monkeypatch):
    """Rows are written before the checkpoint that holds their epoch: a run that dies right
    after appending a row resumes with every epoch exactly once, to the same bits."""
    from graphnet import runfolder

    spec = graphnet.load_spec(write(tmp_path))
    graphnet.train(spec, tmp_path / "whole")
    calls = {"n": 0}
    original = runfolder.RunFolder.write_checkpoint

    def dies_at_second(self, arrays):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as a kill would, after epoch 2's row is in metrics.csv
        original(self, arrays)

    monkeypatch.setattr(runfolder.RunFolder, "write_checkpoint", dies_at_second)
    with pytest.raises(KeyboardInterrupt):
        graphnet.train(spec, tmp_path / "cut")
    monkeypatch.setattr(runfolder.RunFolder, "write_checkpoint", original)
    graphnet.train(spec, tmp_path / "cut", resume=True)
    rows = (tmp_path / "cut" / "metrics.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["1", "2", "3"]
    with (
        np.load(tmp_path / "whole" / "weights.npz") as a,
        np.load(tmp_path / "cut" / "weights.npz") as b,
    ):
        assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_a_partial_last_row_is_dropped_on_resume(tmp_path):
    """A row cut short by a full disk is not an error on --resume: it is past the checkpoint
    and is computed again."""
    spec = graphnet.load_spec(write(tmp_path))
    graphnet.train(
        spec,
        tmp_path / "run",
    )
    metrics = tmp_path / "run" / "metrics.csv"
    metrics.write_text(metrics.read_text() + "4,0.12")
    graphnet.train(
        graphnet.load_spec(write(tmp_path), {"train.epochs": 4}), tmp_path / "run", resume=True
    )
    assert [r.split(",")[0] for r in metrics.read_text().splitlines()[1:]] == ["1", "2", "3", "4"]
