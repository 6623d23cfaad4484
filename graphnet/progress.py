"""What ``graphnet run`` prints while it trains, and the summary it ends with.

On a terminal: a status line rewritten in place (epoch, batch, running loss, last validation
loss, rate, time left) under a thinned list of epochs. Anywhere else (CI, a pipe, a file): the
thinned list only, one plain line per printed epoch with the columns of ``metrics.csv``.
Progress goes to standard error, so a redirected standard output still shows it; the final
``done:`` summary goes to standard output. ``--quiet``: nothing but the summary.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import click

from graphnet.trainer import Reporter

LINES = 20  # a run prints about this many epoch lines (plus its first and last), however long
REDRAWS_PER_SECOND = 10


class Progress(Reporter):
    """A reporter of the command line; ``close()`` ends its output when the run is over."""

    def close(self) -> None:
        """The run is over, finished or not."""


def reporter_for(quiet: bool, stream: TextIO | None = None) -> Progress:
    """The reporter ``graphnet run`` uses: quiet, a live status line on a terminal, or lines."""
    if quiet:
        return Progress()
    stream = stream if stream is not None else sys.stderr
    return LiveReporter() if _is_terminal(stream) else LineReporter()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def format_record(record: Mapping[str, Any], epochs: int) -> str:
    """One epoch as a line: ``epoch  12/100  loss 0.5  val_loss 0.6  seconds 0.0012``."""
    width = len(str(epochs))
    parts = [f"epoch {record['epoch']:>{width}}/{epochs}"]
    parts += [
        f"{k} {v:.3g}" if k == "seconds" else f"{k} {v:.6g}"
        for k, v in record.items()
        if k != "epoch"
    ]
    return "  ".join(parts)


def duration(seconds: float) -> str:
    """``0.74 s``, ``42 s``, ``3m 05s``, ``2h 04m``: as precise as a person reads it."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def summary(
    history: Sequence[Mapping[str, Any]],
    run_dir: Path,
    elapsed: float,
    results: Mapping[str, Any] | None = None,
    test: Mapping[str, float] | None = None,
) -> str:
    """The last line of a run: the final epoch's losses and metrics, the best epoch of the
    monitored column and why the run stopped (from ``results``, ``results.json``'s content),
    the test split's scores (``test_<column>``), the time, the run folder."""
    if not history:
        return f"done: nothing to train ({duration(elapsed)}); run folder {run_dir}"
    last = history[-1]
    parts = [f"epoch {last['epoch']}"]
    if results and results.get("stopped") == "early_stopping":
        parts[0] += " (early stopping)"
    parts += [f"{k} {v:.6g}" for k, v in last.items() if k not in ("epoch", "seconds")]
    if results and results.get("best") is not None:
        parts.append(
            f"best {results['monitor']} {results['best']:.6g} at epoch {results['best_epoch']}"
        )
    parts += [f"test_{k} {v:.6g}" for k, v in (test or {}).items()]
    return f"done: {'  '.join(parts)}  ({duration(elapsed)}); run folder {run_dir}"


class LineReporter(Progress):
    """Plain lines: the run's first epoch, every ``epochs / LINES``-th one, and the last."""

    def __init__(self, echo: Callable[[str], None] | None = None) -> None:
        self.echo = echo or (lambda line: click.echo(line, err=True))
        self.epochs = 0
        self.first = 1
        self.every = 1

    def start(self, run_dir: Path, info: Mapping[str, Any]) -> None:
        self.epochs = info["epochs"]
        self.first = info["first_epoch"]
        self.every = max(1, math.ceil(self.epochs / LINES))
        if self.first > self.epochs:
            self.echo(f"the run is complete already: {self.epochs} epochs -> {run_dir}")
            return
        held = f" ({info['validation']} held out)" if info["validation"] else ""
        resumed = f", resuming at epoch {self.first}" if self.first > 1 else ""
        self.echo(
            f"training {info['parameters']} parameters on {info['samples']} samples{held} "
            f"for {self.epochs} epochs{resumed} -> {run_dir}"
        )

    def shows(self, epoch: int) -> bool:
        """Whether ``epoch`` gets a line of its own."""
        return epoch == self.first or epoch == self.epochs or epoch % self.every == 0

    def epoch(self, record: Mapping[str, Any]) -> None:
        if self.shows(record["epoch"]):
            self.echo(format_record(record, self.epochs))


class LiveReporter(LineReporter):
    """The plain lines, and under them a status line redrawn in place at most 10 times a second:
    ``epoch 3/60  batch 12/38  loss 0.0412  val_loss 0.0398  2.41 epochs/s  24 s left``."""

    def __init__(
        self,
        write: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        width: Callable[[], int] | None = None,
    ) -> None:
        self.write = write or (lambda text: click.echo(text, nl=False, err=True))
        super().__init__(lambda line: self.write(line + "\n"))
        self.clock = clock
        self.width = width or (lambda: shutil.get_terminal_size().columns)
        self.shown = 0  # length of the status line on screen (0: none)
        self.started = 0.0
        self.next_draw = 0.0
        self.position = (0, 0, 1)  # epoch, batch, batches
        self.batch_losses = (0.0, 0)  # sum and count of this epoch's batch losses so far
        self.last: Mapping[str, Any] = {}

    def start(self, run_dir: Path, info: Mapping[str, Any]) -> None:
        super().start(run_dir, info)
        self.started = self.next_draw = self.clock()
        self.position = (self.first, 0, 1)

    def batch(self, epoch: int, batch: int, batches: int, loss: float) -> None:
        total, count = self.batch_losses if batch > 1 else (0.0, 0)
        self.batch_losses = (total + loss, count + 1)
        self.position = (epoch, batch, batches)
        if self.clock() >= self.next_draw:
            self.draw()

    def epoch(self, record: Mapping[str, Any]) -> None:
        self.last = record
        epoch = record["epoch"]
        if self.shows(epoch):
            self.erase()
            super().epoch(record)
            if epoch < self.epochs:
                self.draw()  # put the status back at once under the new line
        elif self.clock() >= self.next_draw:
            self.draw()

    def status(self, width: int = 1000) -> str:
        """The status line for the current state, in ``width`` characters: the rate, then the
        validation loss, then the batch make way when it is too long."""
        epoch, batch, batches = self.position
        parts = {"epoch": f"epoch {epoch}/{self.epochs}"}
        if batches > 1:
            parts["batch"] = f"batch {batch}/{batches}"
        total, count = self.batch_losses
        if count:
            parts["loss"] = f"loss {total / count:.3g}"
        if "val_loss" in self.last:
            parts["val_loss"] = f"val_loss {self.last['val_loss']:.3g}"
        done = (epoch - self.first) + batch / batches  # epochs done in this session
        elapsed = self.clock() - self.started
        if done > 0 and elapsed > 0:
            rate = done / elapsed
            if rate >= 1 or batches == 1:
                parts["rate"] = f"{_rate(rate)} epochs/s"
            else:
                parts["rate"] = f"{_rate(rate * batches)} batches/s"
            left = (self.epochs - self.first + 1 - done) / rate
            parts["left"] = f"{duration(left) if left >= 1 else '<1 s'} left"
        for field in ("rate", "val_loss", "batch"):
            if len("  ".join(parts.values())) < width:
                break
            parts.pop(field, None)
        return "  ".join(parts.values())[: width - 1]

    def draw(self) -> None:
        line = self.status(max(self.width(), 20))
        self.write("\r" + line.ljust(self.shown))
        self.shown = len(line)
        self.next_draw = self.clock() + 1 / REDRAWS_PER_SECOND

    def erase(self) -> None:
        if self.shown:
            self.write("\r" + " " * self.shown + "\r")
            self.shown = 0

    def close(self) -> None:
        if self.shown:  # keep the last status visible (where an interrupted run stopped)
            self.write("\n")
            self.shown = 0
