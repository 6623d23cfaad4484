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
    "train": {
        "epochs": 3,
        "batch_size": 8,
        "checkpoint_every": 0,
        "optimizer": {"type": "sgd", "lr": 0.05},
    },
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


def test_a_compressed_npz_bomb_is_refused_before_it_is_decompressed(tmp_path):
    """A 2 MB `savez_compressed` file holding a 2 GB array, given as --weights: refused from the
    member's header (the network needs another shape), in well under a second of reading."""
    np.savez_compressed(tmp_path / "bomb.npz", **{"h/W": np.zeros(2**28)})
    assert (tmp_path / "bomb.npz").stat().st_size < 5_000_000
    started = time.perf_counter()
    with pytest.raises(graphnet.DataError, match=r"bomb.npz: h/W: shape \[268435456\]"):
        graphnet.build(graphnet.load_spec(write(tmp_path))).load_weights(tmp_path / "bomb.npz")
    assert time.perf_counter() - started < 5


def test_data_larger_than_memory_is_refused_from_the_headers(tmp_path):
    """An NPZ whose arrays would need more memory than the machine has is refused before
    anything is read, naming the file and the size."""
    from graphnet.npzfile import read_npz

    np.savez_compressed(tmp_path / "big.npz", x=np.zeros(2**20))
    with pytest.raises(graphnet.DataError, match=r"big.npz: its arrays would take .* GiB"):
        read_npz(tmp_path / "big.npz", "data file", max_bytes=1000)


def test_weights_too_large_for_float32_are_a_located_data_error(tmp_path):
    """--weights holding 1e300 on a float32 spec: exit 2 naming the key, not a divergence."""
    network = graphnet.build(graphnet.load_spec(write(tmp_path)))
    weights = {k: np.zeros(v.shape) for k, v in network.params.items()}
    weights["h/W"][0, 0] = 1e300
    np.savez(tmp_path / "w.npz", **weights)
    result = CliRunner().invoke(
        cli,
        [
            "run",
            str(write(tmp_path)),
            "--set",
            "dtype=float32",
            "--weights",
            str(tmp_path / "w.npz"),
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "w.npz: h/W: 1e+300 is too large for float32" in result.output


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "train.optimizer.lr=.inf",
            "--set train.optimizer.lr=.inf: train.optimizer.lr: inf is not a finite number",
        ),
        ("train.optimizer.weight_decay=.inf", "weight_decay: inf is not a finite number"),
        ("loss.weight=.nan", "--set loss.weight=.nan: loss[0].weight"),
        ("outputs=[]", "--set outputs=[]: outputs: list should have at least 1 item"),
    ],
)
def test_non_finite_and_empty_values_are_refused_at_validation_naming_the_set(
    tmp_path, override, expected
):
    """Infinite or NaN option values and an empty `outputs` are spec errors (exit 2) found by
    `validate`, and an error in a --set value names the --set, not a line of the file."""
    result = CliRunner().invoke(cli, ["validate", str(write(tmp_path)), "--set", override])
    assert result.exit_code == 2, result.output
    assert expected in result.output


def test_a_key_yaml_reads_as_a_boolean_is_named_as_written(tmp_path):
    """`true: 1` at the top of a spec is reported as the key true at its line, not as `[1]`."""
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(SPEC, sort_keys=False) + "true: 1\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "the key True is read as bool" in result.output
    assert "[1]" not in result.output


def test_a_broken_installed_plugin_is_a_warning_not_the_end(monkeypatch):
    """An installed plugin package that fails to import is a warning naming it; every other
    type still works, `graphnet plugins` lists it as broken, and an unknown type names it."""
    from importlib.metadata import EntryPoint

    from graphnet import registry as registry_module

    real = registry_module.entry_points

    def with_broken(group: str):
        broken = EntryPoint("layers", "graphnet_no_such_module_xyz", "graphnet")
        return [*real(group=group), broken]

    monkeypatch.setattr(registry_module, "entry_points", with_broken)
    registry_module._registry.cache_clear()
    try:
        with pytest.warns(graphnet.GraphnetWarning, match="failed to import"):
            registry = registry_module.get_registry()
        assert "dense" in registry.entries("layer")
        with pytest.raises(graphnet.PluginError, match="failed to load"):
            registry.get("layer", "fancy_layer")
        result = CliRunner().invoke(cli, ["plugins"])
        assert result.exit_code == 0, result.output
        assert "(broken)" in result.output
    finally:
        registry_module._registry.cache_clear()


def test_a_hook_returning_a_class_instead_of_a_list_says_what_was_expected():
    """A hook must return a list of classes; a bare class or a tuple is named as such."""
    from graphnet.registry import get_registry

    class Lonely(graphnet.Layer):
        type = "lonely_defenses_test"

    class Plugin:
        @graphnet.hookimpl
        def graphnet_layers(self):
            return Lonely

    registry = get_registry()
    registry.register(Plugin(), "test-lonely")
    try:
        with pytest.raises(graphnet.PluginError, match=r"graphnet_layers\(\) must return a list"):
            registry.entries("layer")
    finally:
        registry.unregister("test-lonely")


def test_the_resume_command_repeats_every_plugin_and_set(tmp_path, monkeypatch):
    """After Ctrl-C, the printed command to continue names every --plugin and --set the run
    needs, so pasting it works."""
    plugin = tmp_path / "ouch.py"
    plugin.write_text(
        "import os, signal\nimport graphnet\n\n"
        "class Ouch(graphnet.Layer):\n"
        "    type = 'ouch'\n"
        "    calls = 0\n"
        "    def forward(self, params, inputs, training):\n"
        "        Ouch.calls += 1\n"
        "        if Ouch.calls == 6:\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "        return inputs[0], None\n"
        "    def backward(self, params, cache, grad):\n"
        "        return [grad], {}\n\n"
        "@graphnet.hookimpl\n"
        "def graphnet_layers():\n"
        "    return [Ouch]\n",
        encoding="utf-8",
    )
    spec = {
        **SPEC,
        "nodes": [
            *SPEC["nodes"][:1],
            {"name": "o", "type": "ouch", "inputs": ["h"]},
            {**SPEC["nodes"][1], "inputs": ["o"]},
        ],
    }
    monkeypatch.chdir(tmp_path)
    args = [
        "run",
        str(write(tmp_path, spec)),
        "--plugin",
        str(plugin),
        "--set",
        "seed=3",
        "--out",
        "run",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 130, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("to continue:")]
    assert f"--plugin {plugin}" in line and "--set seed=3" in line and line.endswith("--resume")


def test_no_command_writes_over_a_run_folders_files(tmp_path, monkeypatch):
    """`predict --output RUN/weights.npz`, `plot --output RUN/loss.png` and `graph --output
    RUN/loss.png` are refused (exit 2) and leave the run's files as they were; `plot` without
    --output does not replace a loss.png in the current folder."""
    monkeypatch.chdir(tmp_path)
    spec = write(tmp_path)
    run = tmp_path / "run"
    assert CliRunner().invoke(cli, ["run", str(spec), "--out", str(run), "-q"]).exit_code == 0
    np.savez(tmp_path / "inputs.npz", x=np.zeros((2, 2)))
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    for args in (
        [
            "predict",
            str(run),
            "--input",
            str(tmp_path / "inputs.npz"),
            "--output",
            str(run / "weights.npz"),
        ],
        ["plot", str(run), "--output", str(run / "loss.png")],
        ["graph", str(spec), "--output", str(run / "loss.png")],
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert "is a file of the run" in result.output
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    (tmp_path / "loss.png").write_bytes(b"mine")
    result = CliRunner().invoke(cli, ["plot", str(run)])
    assert result.exit_code == 2 and "--output" in result.output
    assert (tmp_path / "loss.png").read_bytes() == b"mine"


def test_predict_names_a_file_that_is_not_a_regular_file(tmp_path):
    """`--input /dev/null` is not 'not found': it says what it is."""
    spec = write(tmp_path)
    run = tmp_path / "run"
    assert CliRunner().invoke(cli, ["run", str(spec), "--out", str(run), "-q"]).exit_code == 0
    result = CliRunner().invoke(cli, ["predict", str(run), "--input", "/dev/null"])
    assert result.exit_code == 2
    assert "not a regular file" in result.output


def test_a_runs_memory_does_not_grow_with_its_epochs(tmp_path):
    """Epochs are written to metrics.csv, not kept: while a one-sample run trains, the memory it
    holds at epoch 1,100 is where it was at epoch 100 (1,000 records would hold 400 kB)."""
    import tracemalloc

    from graphnet.trainer import Reporter

    spec = {**SPEC, "data": {**SPEC["data"], "samples": 1}}
    spec["train"] = {**SPEC["train"], "epochs": 1100, "checkpoint_every": 1e9}
    held: dict[int, int] = {}

    class Watch(Reporter):
        def epoch(self, record):
            if record["epoch"] in (100, 1100):
                held[record["epoch"]] = tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        graphnet.api.train(
            graphnet.load_spec(write(tmp_path, spec)), tmp_path / "run", reporter=Watch()
        )
    finally:
        tracemalloc.stop()
    assert held[1100] - held[100] < 150_000, held


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (
            lambda a: a.update({"state/step": np.array("seven")}),
            "state/step (the optimizer's state): <U5 array",
        ),
        (lambda a: a.pop("param/h/W"), "checkpoint.npz: param/ (the parameters): missing h/W"),
        (
            lambda a: a.update({"state/all/m": np.full_like(a["state/all/m"], np.nan)}),
            "holds NaN or Inf",
        ),
    ],
    ids=["state-is-text", "missing-parameter", "nan-state"],
)
def test_a_damaged_checkpoint_names_the_file_and_key(tmp_path, damage, expected):
    """--resume on a checkpoint with a text optimizer step, a missing parameter or NaN state
    exits 2 naming checkpoint.npz and the key; it never resumes from nonsense."""
    spec = {**SPEC, "train": {**SPEC["train"], "optimizer": {"type": "adam", "lr": 0.01}}}
    path = write(tmp_path, spec)
    run = tmp_path / "run"
    assert CliRunner().invoke(cli, ["run", str(path), "--out", str(run), "-q"]).exit_code == 0
    with np.load(run / "checkpoint.npz") as checkpoint:
        arrays = {k: checkpoint[k] for k in checkpoint.files}
    damage(arrays)
    np.savez(run / "checkpoint.npz", **arrays)
    result = CliRunner().invoke(
        cli, ["run", str(path), "--out", str(run), "--set", "train.epochs=5", "--resume"]
    )
    assert result.exit_code == 2, result.output
    assert "checkpoint.npz" in result.output and expected in result.output, result.output


@pytest.mark.parametrize("when", ["final-weights", "drawing"])
def test_a_signal_after_the_last_epoch_leaves_a_complete_run(tmp_path, monkeypatch, when):
    """Ctrl-C while the final files or loss.png are written: the files are still written (the
    weights are the uninterrupted run's), the message says the run is complete and gives no
    resume command, exit 130."""
    import os
    import signal

    from graphnet import plots, runfolder

    path = write(tmp_path)
    graphnet.train(graphnet.load_spec(path), tmp_path / "whole")
    owner, name = (
        (runfolder.RunFolder, "write_weights") if when == "final-weights" else (plots, "draw_run")
    )
    original = getattr(owner, name)

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, interrupted)
    result = CliRunner().invoke(cli, ["run", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 130, result.output
    assert "after the last epoch: the run is complete" in result.output
    assert "to continue" not in result.output
    with (
        np.load(tmp_path / "whole" / "weights.npz") as a,
        np.load(tmp_path / "run" / "weights.npz") as b,
    ):
        assert all(np.array_equal(a[k], b[k]) for k in a.files)
    assert (tmp_path / "run" / "results.json").exists()


def test_predict_refuses_inputs_too_large_for_the_spec_dtype(tmp_path):
    """A CSV value of 1e39 given to a float32 run's predict is named (sample and why), never
    printed back as -inf with exit 0."""
    path = write(tmp_path)
    run = tmp_path / "run"
    args = ["run", str(path), "--out", str(run), "--set", "dtype=float32", "-q"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    (tmp_path / "in.csv").write_text("x_0,x_1\n0.5,0.5\n1e39,0.1\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["predict", str(run), "--input", str(tmp_path / "in.csv")])
    assert result.exit_code == 2, result.output
    assert "sample 1 holds a value too large for float32" in result.output


def test_data_too_large_for_float32_is_named_as_such(tmp_path):
    """A CSV holding 1e39 on a float32 spec: the value is too large for float32 (the data holds
    no NaN or Inf), named with its input and sample."""
    (tmp_path / "data.csv").write_text("a,b,c\n0.1,0.2,0.3\n1e39,0.2,0.3\n", encoding="utf-8")
    spec = {**SPEC, "dtype": "float32"}
    spec["data"] = {"source": "csv", "path": "data.csv", "columns": {"x": ["a", "b"], "y": ["c"]}}
    result = CliRunner().invoke(cli, ["validate", str(write(tmp_path, spec))])
    assert result.exit_code == 2, result.output
    assert "too large for float32" in result.output and "NaN" not in result.output


def test_a_default_run_folder_that_is_a_file_is_named_as_such(tmp_path, monkeypatch):
    """When runs/<name> is a file, the message says so without blaming an --out never given."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "spec").write_text("not a folder", encoding="utf-8")
    result = CliRunner().invoke(cli, ["run", str(write(tmp_path)), "-q"])
    assert result.exit_code == 2, result.output
    assert "is a file, not a folder" in result.output
    assert "--out" not in result.output
