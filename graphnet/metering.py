"""The metrics of a run, measured over one pass over a data set at a time.

A batch metric (``compute``) is averaged over the batches, weighted by their size; an
accumulating metric (``accumulates``) is ``reset`` before the pass, ``update``\\ d with every
batch and asked for its ``result`` at the end. Every call goes through the metric's
:class:`~graphnet.calls.Caller`. A metric whose value is NaN writes NaN and is warned about
once.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from graphnet.base import Metric
from graphnet.calls import Caller
from graphnet.errors import GraphnetWarning


@dataclass
class MetricUse:
    """One metric on one loss's prediction and target: its column, instance and slots."""

    column: str
    metric: Metric
    slots: tuple[int, int]
    caller: Caller


class Meters:
    """Measures every metric over a pass: :meth:`start`, :meth:`add` per batch, :meth:`results`."""

    def __init__(self, uses: Sequence[MetricUse]) -> None:
        self.uses = list(uses)
        self.averaged = [use for use in uses if not use.metric.accumulates]
        self.accumulating = [use for use in uses if use.metric.accumulates]
        self.sums = [0.0] * len(self.averaged)
        self.warned: set[str] = set()

    def start(self) -> None:
        """A pass over a data set begins."""
        self.sums = [0.0] * len(self.averaged)
        for use in self.accumulating:
            use.caller.call("reset", use.metric.reset)

    def add(self, values: list[Any], size: int) -> None:
        """One batch of ``size`` samples (``values``: the network's values, by slot)."""
        for i, use in enumerate(self.averaged):
            prediction, target = values[use.slots[0]], values[use.slots[1]]
            value = use.caller.call("compute", use.metric.compute, prediction, target)
            self.sums[i] += use.caller.number("compute", value) * size
        for use in self.accumulating:
            prediction, target = values[use.slots[0]], values[use.slots[1]]
            use.caller.call("update", use.metric.update, prediction, target)

    def results(self, samples: int, epoch: int, prefix: str = "") -> dict[str, float]:
        """Each metric over the pass of ``samples`` samples, keyed ``<prefix><column>``."""
        out: dict[str, float] = {}
        for use, total in zip(self.averaged, self.sums, strict=True):
            out[use.column] = total / samples
        for use in self.accumulating:
            result = use.caller.call("result", use.metric.result)
            out[use.column] = use.caller.number("result", result)
        for use in self.uses:
            if math.isnan(out[use.column]) and use.column not in self.warned:
                self.warned.add(use.column)
                warnings.warn(
                    f"{use.caller.label} is NaN in epoch {epoch} ({prefix}{use.column}); "
                    "metrics.csv holds NaN where it is (this is said once)",
                    GraphnetWarning,
                    stacklevel=2,
                )
        return {prefix + column: value for column, value in out.items()}
