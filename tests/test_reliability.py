"""No run is ever lost, and nothing a spec or data file holds can do harm.

- Ctrl-C (SIGINT) and SIGTERM stop a run at a clean point with exit 130 / 143, say how to
  resume, and the resumed run ends with the same bits as one that never stopped.
- Files are written atomically: a write that fails half-way leaves the previous file intact.
- The same spec and seed give the same bits, from YAML or from JSON.
- Specs are data: no YAML tag runs code, no `type:` imports a module, no NPZ is unpickled.
- Size is not a problem: a 10,000-node chain and a 500-input add validate and train.
- A diverged run keeps its last finite epoch.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import SEED, SMALL_SPEC, assert_same_bits, invoke, plain_env, read_npz, small_data

import graphnet
from graphnet import files

# Shuffled mini-batches, dropout, momentum and a validation split: every source of state that a
# resumed run must restore (the training RNG, the optimizer's buffers).
STATEFUL = {
    "name": "stateful",
    "seed": 3,
    "data": {"source": "synthetic", "function": "product", "samples": 120, "validation": 0.25},
    "inputs": {"x": {"shape": [2]}, "y": {"shape": [1]}},
    "nodes": [
        {"name": "hidden", "type": "dense", "inputs": ["x"], "units": 16},
        {"name": "act", "type": "relu", "inputs": ["hidden"]},
        {"name": "drop", "type": "dropout", "inputs": ["act"], "rate": 0.3},
        {"name": "out", "type": "dense", "inputs": ["drop"], "units": 1},
    ],
    "loss": {"type": "mse", "inputs": ["out", "y"]},
    "train": {
        "epochs": 3,
        "batch_size": 16,
        "shuffle": True,
        "optimizer": {"type": "sgd", "lr": 0.01, "momentum": 0.9},
        "metrics": ["mae"],
    },
}


def metrics_epochs(run: Path) -> list[int]:
    with (run / "metrics.csv").open(newline="", encoding="utf-8") as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


pytestmark = pytest.mark.usefixtures("no_env_plugins")


# -- SIGINT and SIGTERM ------------------------------------------------------------------------


def wait_for(condition: Any, process: subprocess.Popen[str], what: str) -> None:
    """Poll until ``condition()``; fail if the process ends first (or after a generous guard)."""
    guard = time.monotonic() + 120
    while not condition():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the run ended ({process.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > guard:
            process.kill()
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.01)


def epochs_written(run: Path) -> int:
    try:
        return len((run / "metrics.csv").read_text(encoding="utf-8").splitlines()) - 1
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize(
    ("which", "signal_number", "status"),
    [
        ("seed", signal.SIGINT, 130),
        ("seed", signal.SIGTERM, 143),
        ("stateful", signal.SIGINT, 130),
        ("stateful", signal.SIGTERM, 143),
    ],
)
def test_a_signal_stops_the_run_and_resume_gives_the_same_bits(
    tmp_path: Path, which: str, signal_number: int, status: int
) -> None:
    """Ctrl-C or SIGTERM mid-run exits 130 / 143 naming `--resume`; resuming to N epochs gives
    bit for bit the weights of an uninterrupted N-epoch run, and metrics.csv every epoch once."""
    if which == "seed":
        spec = SEED
    else:
        spec = tmp_path / "stateful.yaml"
        spec.write_text(yaml.safe_dump(STATEFUL, sort_keys=False), encoding="utf-8")
    run = tmp_path / "run"
    endless = ["--set", "train.epochs=100000", "--set", "train.checkpoint_every=0"]
    env = plain_env()
    process = subprocess.Popen(
        [sys.executable, "-m", "graphnet", "run", str(spec), *endless, "--out", str(run), "-q"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: (run / "checkpoint.npz").exists() and epochs_written(run) >= 2,
            process,
            "two epochs were written",
        )
        process.send_signal(signal_number)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stderr and "--resume" in stderr, stderr
    assert f"--out {run}" in stderr

    kept = int(read_npz(run / "checkpoint.npz")["epoch"])
    assert f"the run folder keeps epoch {kept}" in stderr
    assert metrics_epochs(run) == list(range(1, kept + 1))
    assert_same_bits(
        read_npz(run / "weights.npz"),
        {
            k.removeprefix("param/"): v
            for k, v in read_npz(run / "checkpoint.npz").items()
            if k.startswith("param/")
        },
    )

    total = kept + 4
    again = ["--set", f"train.epochs={total}", "--set", "train.checkpoint_every=0"]
    resumed = invoke("run", spec, *again, "--out", run, "--resume", "-q")
    assert resumed.exit_code == 0, resumed.output
    # checkpoint_every changes when files are written, never the numbers
    straight = invoke(
        "run", spec, "--set", f"train.epochs={total}", "--out", tmp_path / "straight", "-q"
    )
    assert straight.exit_code == 0, straight.output

    assert_same_bits(read_npz(run / "weights.npz"), read_npz(tmp_path / "straight" / "weights.npz"))
    assert metrics_epochs(run) == list(range(1, total + 1))


# -- atomic writes ---------------------------------------------------------------------------


class HalfWrite:
    """A file whose write stores half of the bytes and then fails as a full disk does."""

    def __init__(self, file: Any) -> None:
        self.file = file

    def write(self, data: bytes) -> int:
        self.file.write(data[: len(data) // 2])
        self.file.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)

    def __enter__(self) -> HalfWrite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()


@pytest.fixture
def failing_checkpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """From the ``fail_from``-th write of checkpoint.npz on, the write fails half-way."""
    state = {"writes": 0, "fail_from": 3}
    doomed: set[int] = set()
    real_mkstemp, real_fdopen = tempfile.mkstemp, os.fdopen

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        handle, name = real_mkstemp(*args, **kwargs)
        if Path(name).name.startswith(".checkpoint.npz."):
            state["writes"] += 1
            if state["writes"] >= state["fail_from"]:
                doomed.add(handle)
        return handle, name

    def fdopen(handle: int, *args: Any, **kwargs: Any) -> Any:
        file = real_fdopen(handle, *args, **kwargs)
        if handle in doomed:  # descriptor numbers are reused: each is doomed once
            doomed.discard(handle)
            return HalfWrite(file)
        return file

    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(files.os, "fdopen", fdopen)
    yield state


def test_a_checkpoint_write_that_fails_half_way_keeps_the_previous_one(
    tmp_path: Path, failing_checkpoint: dict[str, int]
) -> None:
    """A disk that fills up while checkpoint.npz is written: the run fails (exit 1) naming the
    file, and the previous checkpoint is intact, loadable and the one the run folder keeps."""
    run = tmp_path / "run"
    result = invoke(
        "run", SEED, "--set", "train.epochs=5", "--set", "train.checkpoint_every=0", "--out", run
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"error: {run}: cannot write checkpoint.npz: No space left on device" in result.stderr
    assert "the run folder keeps epoch 2" in result.stderr
    assert failing_checkpoint["writes"] == 3

    checkpoint = read_npz(run / "checkpoint.npz")
    assert int(checkpoint["epoch"]) == 2
    assert all(np.isfinite(v).all() for k, v in checkpoint.items() if k.startswith("param/"))
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")], (
        "a temporary file is left"
    )

    # the kept checkpoint is the one a clean 2-epoch run writes
    failing_checkpoint["fail_from"] = 10**9
    assert invoke("run", SEED, "--set", "train.epochs=2", "--out", tmp_path / "two").exit_code == 0
    assert_same_bits(checkpoint, read_npz(tmp_path / "two" / "checkpoint.npz"))


def test_the_atomic_writer_leaves_the_old_file_when_the_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`write_atomic` that fails in `os.replace` leaves the old bytes and no temporary file."""
    target = tmp_path / "checkpoint.npz"
    target.write_bytes(b"old")

    def broken(*args: Any) -> None:
        raise OSError(errno.EIO, "input/output error")

    monkeypatch.setattr(files.os, "replace", broken)
    with pytest.raises(OSError):
        files.write_atomic(target, b"new" * 1000)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]


# -- determinism -----------------------------------------------------------------------------


def test_the_same_spec_and_seed_give_identical_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs of one spec with one seed write byte-identical weights.npz and checkpoint.npz,
    even an hour apart (NPZ members carry no timestamp)."""
    spec = tmp_path / "stateful.yaml"
    spec.write_text(yaml.safe_dump(STATEFUL, sort_keys=False), encoding="utf-8")
    assert invoke("run", spec, "--out", tmp_path / "a", "-q").exit_code == 0
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)
    assert invoke("run", spec, "--out", tmp_path / "b", "-q").exit_code == 0
    for name in ("weights.npz", "checkpoint.npz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_yaml_and_json_forms_of_a_spec_give_the_same_bits(tmp_path: Path) -> None:
    """A spec written as YAML and as JSON trains to the same bits."""
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(STATEFUL), encoding="utf-8")
    (tmp_path / "spec.json").write_text(json.dumps(STATEFUL, indent=1), encoding="utf-8")
    for form in ("yaml", "json"):
        result = invoke("run", tmp_path / f"spec.{form}", "--out", tmp_path / form, "-q")
        assert result.exit_code == 0, result.output
    assert (tmp_path / "yaml" / "weights.npz").read_bytes() == (
        tmp_path / "json" / "weights.npz"
    ).read_bytes()
    assert_same_bits(
        read_npz(tmp_path / "yaml" / "weights.npz"), read_npz(tmp_path / "json" / "weights.npz")
    )


# -- safety ----------------------------------------------------------------------------------

GOOD = SMALL_SPEC


@pytest.mark.parametrize(
    "tagged",
    [
        "name: !!python/object/apply:os.system ['touch {marker}']\n",
        "name: !!python/object/new:os.system ['touch {marker}']\n",
        "name: !!python/name:os.system\n",
        "name: !!python/object/apply:subprocess.check_call [['touch', '{marker}']]\n",
        "!!python/object/apply:os.system ['touch {marker}']\n#",
    ],
    ids=["apply", "new", "name", "subprocess", "whole-document"],
)
def test_python_yaml_tags_are_rejected_and_run_nothing(tmp_path: Path, tagged: str) -> None:
    """`!!python/...` tags are not YAML graphnet reads: an error with the line, no command run."""
    marker = tmp_path / "marker"
    spec = tmp_path / "spec.yaml"
    text = tagged.format(marker=marker)
    spec.write_text(text if text.endswith("#") else text + GOOD, encoding="utf-8")
    result = invoke("validate", spec)
    assert result.exit_code == 2, result.output
    assert f"{spec}:1:" in result.stderr and "python/" in result.stderr
    assert "Traceback" not in result.output
    with pytest.raises(graphnet.SpecError):
        graphnet.load_spec(spec)
    assert not marker.exists()
    # the same through --set and through a JSON spec
    plain = tmp_path / "plain.yaml"
    plain.write_text(GOOD, encoding="utf-8")
    value = f"!!python/object/apply:os.system ['touch {marker}']"
    assert invoke("validate", plain, "--set", f"name={value}").exit_code == 2
    assert not marker.exists()


class Boom:
    """An object whose unpickling would create a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_npz_object_arrays_are_never_unpickled(tmp_path: Path) -> None:
    """An NPZ holding an object array is refused as data and as weights; nothing is unpickled."""
    marker = tmp_path / "marker"
    evil = np.empty(4, dtype=object)
    evil[:] = [Boom(marker)] * 4
    np.savez(tmp_path / "data.npz", x=evil, y=np.zeros((4, 1)))
    np.savez(tmp_path / "weights.npz", **{"out/W": evil, "out/b": np.zeros(1)})
    spec = tmp_path / "spec.yaml"
    spec.write_text("data: {source: npz, path: data.npz}\n" + GOOD, encoding="utf-8")
    data = invoke("run", spec, "--out", tmp_path / "run")
    assert data.exit_code == 2, data.output
    assert "data.npz: cannot be read without pickle" in data.stderr
    (tmp_path / "data.npz").unlink()
    np.savez(tmp_path / "data.npz", x=np.zeros((4, 2)), y=np.zeros((4, 1)))
    weights = invoke("run", spec, "--out", tmp_path / "run2", "--weights", tmp_path / "weights.npz")
    assert weights.exit_code == 2, weights.output
    assert "weights.npz: cannot be read without pickle" in weights.stderr
    assert not marker.exists()


def unimported_module() -> str:
    """A standard-library module that is importable but not imported yet."""
    for name in ("colorsys", "wave", "chunk", "tabnanny", "pyclbr", "mailcap", "nntplib"):
        if name not in sys.modules:
            try:
                spec = __import__("importlib.util").util.find_spec(name)
            except (ImportError, ValueError):
                continue
            if spec is not None:
                return name
    pytest.skip("every candidate module is imported already")


def test_a_module_path_as_type_is_an_unknown_type_and_imports_nothing(tmp_path: Path) -> None:
    """`type: os.system` or `type: <module>.<name>` anywhere is only an unknown type, located;
    no module is imported."""
    module = unimported_module()
    spec = tmp_path / "spec.yaml"
    cases = [
        (GOOD.replace("type: dense", f"type: {module}.Chunk"), "5: nodes[0].type", "layer"),
        (GOOD.replace("type: mse", "type: os.system"), "7: loss[0].type", "loss"),
        (
            GOOD + f"train: {{optimizer: {{type: {module}}}}}\n",
            "8: train.optimizer.type",
            "optimizer",
        ),
        (GOOD + f"train: {{metrics: [{module}.open]}}\n", "8: train.metrics[0]", "metric"),
        (f"data: {{source: {module}}}\n" + GOOD, "1: data.source", "data source"),
    ]
    before = set(sys.modules)
    for text, where, kind in cases:
        spec.write_text(text, encoding="utf-8")
        result = invoke("validate", spec)
        assert result.exit_code == 2, result.output
        assert f"{spec}:{where}: unknown {kind} type" in result.stderr, result.stderr
    assert module not in sys.modules
    assert not {m for m in set(sys.modules) - before if m.split(".")[0] in (module, "os")}


# -- scale -----------------------------------------------------------------------------------


def test_a_ten_thousand_node_chain_validates_and_trains(tmp_path: Path) -> None:
    """A chain of 10,000 nodes (dense and relu alternating) validates and trains an epoch."""
    nodes: list[dict[str, Any]] = []
    previous = "x"
    for i in range(10_000):
        layer: dict[str, Any] = {"type": "dense", "units": 2} if i % 2 == 0 else {"type": "relu"}
        nodes.append({"name": f"n{i}", "inputs": [previous], **layer})
        previous = f"n{i}"
    nodes.append({"name": "out", "type": "dense", "inputs": [previous], "units": 1})
    spec = {
        "data": {"source": "npz", "path": "data.npz"},
        "inputs": {"x": {"shape": [2]}, "y": {"shape": [1]}},
        "nodes": nodes,
        "loss": {"type": "mse", "inputs": ["out", "y"]},
        "train": {"epochs": 1, "optimizer": {"type": "sgd", "lr": 0.01}},
    }
    small_data(tmp_path)
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    loaded = graphnet.load_spec(path)
    assert len(loaded.nodes) == 10_001
    history = graphnet.train(loaded, tmp_path / "run")
    assert [record["epoch"] for record in history] == [1]
    assert np.isfinite(history[-1]["loss"])
    assert len(read_npz(tmp_path / "run" / "weights.npz")) == 2 * 5_001


def test_a_five_hundred_input_add_validates_and_trains(tmp_path: Path) -> None:
    """An `add` of 500 inputs validates and trains an epoch."""
    branches = [{"name": f"b{i}", "type": "dense", "inputs": ["x"], "units": 1} for i in range(500)]
    spec = {
        "data": {"source": "npz", "path": "data.npz"},
        "inputs": {"x": {"shape": [2]}, "y": {"shape": [1]}},
        "nodes": [
            *branches,
            {"name": "sum", "type": "add", "inputs": [b["name"] for b in branches]},
        ],
        "loss": {"type": "mse", "inputs": ["sum", "y"]},
        "train": {"epochs": 1, "optimizer": {"type": "sgd", "lr": 0.001}},
    }
    small_data(tmp_path)
    path = tmp_path / "wide.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    result = invoke("run", path, "--out", tmp_path / "run", "-q")
    assert result.exit_code == 0, result.output
    assert len(read_npz(tmp_path / "run" / "weights.npz")) == 1_000


# -- divergence ------------------------------------------------------------------------------


def test_a_diverged_run_keeps_its_last_finite_epoch(tmp_path: Path) -> None:
    """A run whose loss overflows exits 1 naming the epoch; the folder keeps the checkpoint of
    the last finite epoch and weights.npz from it, all finite, and metrics.csv up to it."""
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "data.npz", x=rng.random((8, 2)), y=rng.random((8, 1)))
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        """\
data: {source: npz, path: data.npz}
inputs:
  x: {shape: [2]}
  y: {shape: [1]}
nodes:
  - {name: hidden, type: dense, inputs: [x], units: 4}
  - {name: act, type: relu, inputs: [hidden]}
  - {name: out, type: dense, inputs: [act], units: 1}
loss: {type: mse, inputs: [out, y]}
train: {epochs: 50, batch_size: 4, optimizer: {type: sgd, lr: 1.0e+30}}
""",
        encoding="utf-8",
    )
    run = tmp_path / "run"
    result = invoke("run", spec, "--out", run, "-q")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    message = result.stderr
    assert "error: the loss became" in message and "Training diverged" in message
    checkpoint = read_npz(run / "checkpoint.npz")
    kept = int(checkpoint["epoch"])
    assert kept >= 1
    assert f"in epoch {kept + 1}, batch" in message
    assert f"the run folder keeps epoch {kept}" in message
    weights = read_npz(run / "weights.npz")
    assert all(np.isfinite(array).all() for array in weights.values())
    assert_same_bits(
        weights,
        {k.removeprefix("param/"): v for k, v in checkpoint.items() if k.startswith("param/")},
    )
    assert metrics_epochs(run) == list(range(1, kept + 1))


def test_a_full_batch_run_that_diverges_keeps_its_last_finite_epoch(tmp_path: Path) -> None:
    """With one step per epoch and no checkpoint written yet, a run whose loss overflows keeps
    the epoch before, bit for bit the weights of a run that stopped there."""
    run = tmp_path / "run"
    result = invoke("run", SEED, "--set", "train.optimizer.lr=1e30", "--out", run, "-q")
    assert result.exit_code == 1, result.output
    kept = int(read_npz(run / "checkpoint.npz")["epoch"])
    assert kept >= 2
    assert f"the loss became inf in epoch {kept + 1}, batch 1" in result.stderr
    assert f"the run folder keeps epoch {kept}" in result.stderr
    straight = invoke(
        "run", SEED, "--set", "train.optimizer.lr=1e30", "--set", f"train.epochs={kept}",
        "--out", tmp_path / "straight", "-q",
    )  # fmt: skip
    assert straight.exit_code == 0, straight.output
    assert_same_bits(read_npz(run / "weights.npz"), read_npz(tmp_path / "straight" / "weights.npz"))
    assert_same_bits(
        read_npz(run / "checkpoint.npz"), read_npz(tmp_path / "straight" / "checkpoint.npz")
    )


@pytest.mark.parametrize(
    ("overrides", "copied"),
    [
        ({}, False),  # full batch: the live parameters until the step
        ({"train.batch_size": 100}, True),  # several steps change them before a failure
        ({"data.validation": 0.2}, True),  # validation calls plugins after the step
        ({"train.metrics": ["mae"]}, True),  # so do metrics
    ],
)
def test_an_epoch_of_one_step_copies_no_parameters_to_fall_back_to(
    overrides: dict[str, Any], copied: bool
) -> None:
    """The state a failed epoch falls back to is a copy of the parameters only where the epoch
    changes them before it can fail; an epoch of one step keeps none (no model-sized copy per
    epoch), and its live state stops counting once its step is applied."""
    trainer = seed_trainer(overrides)
    network = trainer.network
    before = network.params.flat.copy()
    trainer.keep_rollback(0)
    fallback = trainer.fallback()
    assert fallback is not None
    assert (fallback.flat is not network.params.flat) == copied
    assert np.array_equal(fallback.flat, before)
    with np.errstate(all="ignore"):
        trainer.run_epoch(1)
    assert (trainer.fallback() is not None) == copied


def test_the_generator_state_to_fall_back_to_is_read_while_something_draws(
    tmp_path: Path,
) -> None:
    """In epochs of one step, the training generator's state kept to fall back to is the one
    each epoch started from: read every epoch while something draws (dropout), and once it
    stands still, taken as it was, unless something draws again (then nothing is kept)."""
    dropout = {"name": "drop", "type": "dropout", "inputs": ["act"], "rate": 0.3}
    spec = tmp_path / "dropout.yaml"
    document = yaml.safe_load(SEED.read_text(encoding="utf-8"))
    document["nodes"] = [
        *document["nodes"][:2],
        dropout,
        {**document["nodes"][2], "inputs": ["drop"]},
    ]
    spec.write_text(yaml.safe_dump(document), encoding="utf-8")
    for path, draws in ((spec, True), (SEED, False)):
        trainer = seed_trainer({}, path)
        for epoch in range(1, 5):
            trainer.keep_rollback(epoch - 1)
            started = trainer.train_rng.bit_generator.state
            trainer.stop.signal_number = signal.SIGINT  # stops the epoch before its step
            with pytest.raises(graphnet.GraphnetError):
                trainer.run_epoch(epoch)
            trainer.stop.signal_number = 0
            assert (trainer.train_rng.bit_generator.state != started) == draws
            fallback = trainer.fallback()
            assert fallback is not None and fallback.rng == started
            trainer.run_epoch(epoch)
    trainer.keep_rollback(4)
    trainer.train_rng.random()  # a draw after the state stood still for epochs
    assert trainer.fallback() is None


def seed_trainer(overrides: dict[str, Any], path: Path = SEED) -> Any:
    """A trainer of ``path`` for one epoch, with its signal handler, outside any run."""
    from graphnet.dataset import prepare, streams
    from graphnet.stop import Stop
    from graphnet.trainer import Trainer

    spec = graphnet.load_spec(path, {"train.epochs": 1, **overrides})
    rngs = streams(spec.seed)
    trainer = Trainer(spec, graphnet.build(spec), prepare(spec, rngs), rngs)
    trainer.stop = Stop()
    return trainer
