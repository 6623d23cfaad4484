"""What `graphnet run` prints while it trains: the per-batch hook, plain thinned lines without a
terminal, a live status line on one, and the final summary."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import invoke, plain_env, product_spec, write_spec

import graphnet
from graphnet.progress import LineReporter, LiveReporter, duration, reporter_for, summary
from graphnet.trainer import Reporter


def tiny_spec(folder: Path, samples: int = 8, validation: float = 0.0, **train: Any) -> Path:
    """A small product-data spec (dense 3 -> relu -> dense 1) written to ``folder/tiny.yaml``."""
    return write_spec(
        folder, product_spec(samples=samples, validation=validation, **train), "tiny.yaml"
    )


class Batches(Reporter):
    """Keeps every batch call and every epoch record."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, int, int, float]] = []
        self.records: list[Mapping[str, Any]] = []

    def batch(self, epoch: int, batch: int, batches: int, loss: float) -> None:
        self.batches.append((epoch, batch, batches, loss))

    def epoch(self, record: Mapping[str, Any]) -> None:
        self.records.append(record)


# -- the per-batch hook ----------------------------------------------------------------------


def test_a_reporter_that_overrides_batch_hears_every_batch(tmp_path):
    """`Reporter.batch(epoch, batch, batches, loss)` is called after each batch's step, numbered
    from 1, with that batch's loss: 8 samples in batches of 3 are 3 batches (3, 3, 2 samples),
    whose losses weighted by size average to the epoch's loss."""
    reporter = Batches()
    history = graphnet.train(
        graphnet.load_spec(tiny_spec(tmp_path, epochs=2, batch_size=3)),
        tmp_path / "run",
        reporter=reporter,
    )
    assert [b[:3] for b in reporter.batches] == [(e, b, 3) for e in (1, 2) for b in (1, 2, 3)]
    for epoch, record in enumerate(history, start=1):
        losses = [b[3] for b in reporter.batches if b[0] == epoch]
        weighted = (3 * losses[0] + 3 * losses[1] + 2 * losses[2]) / 8
        assert weighted == pytest.approx(record["loss"], rel=1e-12)


def test_the_silent_reporter_is_never_called_per_batch(tmp_path, monkeypatch):
    """A reporter that does not override `batch` (the API's silent default, or one written
    before the hook existed) costs no call per batch: the trainer is not even handed it."""
    calls: list[Any] = []
    monkeypatch.setattr(Reporter, "batch", lambda self, *args: calls.append(args))

    class EpochsOnly:  # duck-typed, as reporters written before `batch` existed
        def start(self, run_dir: Path, info: Mapping[str, Any]) -> None:
            pass

        def epoch(self, record: Mapping[str, Any]) -> None:
            pass

    spec = graphnet.load_spec(tiny_spec(tmp_path, batch_size=2))
    graphnet.train(spec, tmp_path / "default")
    graphnet.train(spec, tmp_path / "subclass", reporter=type("Quiet", (Reporter,), {})())
    graphnet.train(spec, tmp_path / "duck", reporter=EpochsOnly())
    assert calls == []


# -- plain lines -----------------------------------------------------------------------------


def test_plain_lines_are_thinned_for_a_long_run(tmp_path, monkeypatch):
    """Without a terminal a 10,000-epoch run prints at most ~100 lines: the first epoch, evenly
    spaced ones and the last, each with every column of metrics.csv, then the summary."""
    monkeypatch.chdir(tmp_path)
    spec = tiny_spec(tmp_path, epochs=10_000, checkpoint_every=1e9)
    result = invoke("run", str(spec), "--out", "run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()  # progress on stderr, the summary on stdout
    assert len(lines) <= 100
    assert lines[0] == "training 13 parameters on 8 samples for 10000 epochs -> run"
    assert lines[-1].startswith("done: epoch 10000  loss ")
    epochs = [int(re.match(r"epoch +(\d+)/10000  ", line)[1]) for line in lines[1:-1]]
    assert epochs[0] == 1 and epochs[-1] == 10_000
    gaps = {b - a for a, b in itertools.pairwise(epochs[1:])}
    assert len(gaps) == 1, gaps  # evenly spaced after the first
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    for line in lines[1:-1]:
        assert re.findall(r"(?:^|  )([a-z_]+) ", line) == header


def test_plain_lines_name_validation_and_metrics(tmp_path, monkeypatch):
    """Each line carries val_loss and the metrics, in the order of metrics.csv; the summary
    names the final losses and metrics, the best epoch of val_loss, the time taken and the run
    folder."""
    monkeypatch.chdir(tmp_path)
    spec = tiny_spec(tmp_path, samples=20, validation=0.25, epochs=2, metrics=["mae"])
    result = invoke("run", str(spec), "--out", "run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("training 13 parameters on 15 samples (5 held out) for 2 epochs")
    assert re.fullmatch(
        r"epoch 2/2  loss \S+  val_loss \S+  mae \S+  val_mae \S+  seconds \S+", lines[2]
    )
    assert re.fullmatch(
        r"done: epoch 2  loss \S+  val_loss \S+  mae \S+  val_mae \S+  best val_loss \S+ at epoch "
        r"[12]  \(\d+\.\d\d s\); run folder run",
        lines[3],
    )


def test_a_resumed_run_prints_its_first_epoch(tmp_path, monkeypatch):
    """A resumed run's first line is the epoch it resumes at, whatever the spacing."""
    monkeypatch.chdir(tmp_path)
    spec = tiny_spec(tmp_path, epochs=7)
    assert invoke("run", str(spec), "--out", "run", "-q").exit_code == 0
    result = invoke("run", str(spec), "--out", "run", "--set", "train.epochs=100", "--resume")
    assert result.exit_code == 0, result.output
    epochs = re.findall(r"^epoch +(\d+)/100", result.stderr, re.M)
    assert epochs == ["8", "10", "15", *[str(e) for e in range(20, 101, 5)]]


def test_progress_goes_to_stderr_and_the_summary_to_stdout(tmp_path, monkeypatch):
    """`graphnet run spec > out.txt` still shows the progress on the terminal: every progress
    line is on standard error; standard output holds only the `done:` line."""
    monkeypatch.chdir(tmp_path)
    spec = tiny_spec(tmp_path, epochs=3)
    result = invoke("run", str(spec), "--out", "run")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [result.output.splitlines()[-1]]
    assert result.stdout.startswith("done: epoch 3")
    assert result.stderr.startswith("training 13 parameters")
    assert "epoch 3/3" in result.stderr


def test_quiet_and_no_terminal_choose_their_reporters(tmp_path):
    """--quiet prints nothing while training; a pipe or file gets plain lines; a terminal
    gets the live status line."""

    class Terminal:
        def isatty(self) -> bool:
            return True

    with (tmp_path / "file").open("w") as file:
        assert type(reporter_for(False, file)) is LineReporter
        assert type(reporter_for(True, file)) is not LineReporter
    assert type(reporter_for(False, Terminal())) is LiveReporter
    assert not isinstance(reporter_for(True, Terminal()), LineReporter)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.7412, "0.74 s"), (42.4, "42 s"), (185, "3m 05s"), (7441, "2h 04m"), (float("inf"), "?")],
)
def test_durations_read_as_a_person_would_say_them(seconds, text):
    """Times are as precise as they need to be."""
    assert duration(seconds) == text


def test_summary_of_a_run_with_nothing_to_train():
    """A run with no epoch left still names the time and the run folder."""
    assert summary([], Path("runs/x"), 0.5) == "done: nothing to train (0.50 s); run folder runs/x"


# -- the live status line --------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def live(epochs: int, clock: Clock, width: int = 200) -> tuple[LiveReporter, list[str]]:
    written: list[str] = []
    reporter = LiveReporter(written.append, clock, lambda: width)
    info = {"epochs": epochs, "first_epoch": 1, "samples": 8, "validation": 2, "parameters": 13}
    reporter.start(Path("run"), info)
    return reporter, written


def test_status_line_fields():
    """The status shows the epoch, the batch within it, the running loss (mean of its batches
    so far), the last validation loss, the rate and the time left."""
    clock = Clock()
    reporter, _ = live(10, clock)
    reporter.epoch({"epoch": 1, "loss": 1.0, "val_loss": 0.5, "seconds": 2.0})
    clock.now += 2.0  # one epoch of 4 batches in 2 s
    reporter.batch(2, 1, 4, 0.3)
    clock.now += 0.5
    reporter.batch(2, 2, 4, 0.1)
    assert reporter.status() == (
        "epoch 2/10  batch 2/4  loss 0.2  val_loss 0.5  2.4 batches/s  14 s left"
    )
    clock.now += 100.0  # slow: 1.5 epochs in 102.5 s
    assert "batches/s" in reporter.status()
    clock.now = 100.25  # fast: 1.5 epochs in 0.25 s
    assert reporter.status().endswith("6 epochs/s  1.42 s left")


def test_status_line_fits_the_terminal():
    """On a narrow terminal the rate, then val_loss, then the batch make way; never wider
    than the terminal, so the carriage return still finds the start of the line."""
    clock = Clock()
    reporter, _ = live(10, clock)
    reporter.epoch({"epoch": 1, "loss": 1.0, "val_loss": 0.5, "seconds": 2.0})
    clock.now += 2.0
    reporter.batch(2, 1, 4, 0.3)
    full = reporter.status()
    assert reporter.status(len(full) + 1) == full
    without_rate = reporter.status(len(full))
    assert "/s" not in without_rate and "val_loss" in without_rate and "left" in without_rate
    assert "val_loss" not in reporter.status(len(without_rate))
    assert len(reporter.status(12)) == 11


def test_status_line_redraws_at_most_ten_times_a_second():
    """A run of many fast batches redraws the status about ten times a second, not per batch;
    each redraw starts with a carriage return and blanks what the last one left."""
    clock = Clock()
    reporter, written = live(1000, clock)
    for epoch in range(1, 1001):  # 2 s of 10 batches of 0.2 ms each
        for batch in range(1, 11):
            clock.now += 0.0002
            reporter.batch(epoch, batch, 10, 1.0 / epoch)
        reporter.epoch({"epoch": epoch, "loss": 1.0 / epoch, "seconds": 0.002})
    reporter.close()
    statuses = [w for w in written if w.startswith("\repoch")]
    printed = [w for w in written if w.endswith("\n") and w.startswith("epoch")]
    assert len(printed) == 21  # epoch 1 and every 50th
    assert len(statuses) <= 2 * 10 + len(printed)  # the throttle, and a redraw per line printed
    assert all(w.startswith("\r") for w in written if not w.endswith("\n"))
    assert written[-1].startswith("epoch 1000/1000")  # the last epoch; no status after it


def test_close_keeps_an_unfinished_status_line():
    """A run that stops mid-epoch (interrupted, diverged) leaves its last status on screen and
    ends the line, so that the error message starts on a line of its own."""
    clock = Clock()
    reporter, written = live(10, clock)
    reporter.batch(1, 1, 4, 0.3)
    reporter.close()
    assert written[-2].startswith("\repoch 1/10  batch 1/4") and written[-1] == "\n"


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_live_progress_on_a_terminal(tmp_path):
    """`python -m graphnet run` on a (pseudo-)terminal redraws a status line with carriage
    returns (epoch, batch, loss, val_loss, rate, time left) and ends with the summary."""
    import pty

    spec = tiny_spec(tmp_path, samples=64, validation=0.25, epochs=3, batch_size=8)
    env = plain_env(COLUMNS="200")
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "graphnet", "run", str(spec), "--out", "run"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
        env=env,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    assert process.wait(timeout=60) == 0
    output = b"".join(chunks).decode()
    assert "\r" in output.replace("\r\n", "")
    pieces = [p.strip() for p in re.split(r"[\r\n]+", output) if p.strip()]
    statuses = [p for p in pieces if re.match(r"epoch \d/3  batch \d/6", p)]
    assert statuses, output
    assert any(
        re.fullmatch(
            r"epoch \d/3  batch \d/6  loss \S+  val_loss \S+  \S+ (epochs|batches)/s  .+ left", s
        )
        for s in statuses
    ), statuses
    assert re.match(r"epoch 3/3  loss \S+  val_loss \S+  seconds", pieces[-2]), pieces
    assert pieces[-1].startswith("done: epoch 3  loss ") and pieces[-1].endswith("run folder run")
    assert np.isfinite(float(pieces[-1].split()[4]))
