"""The plugin author's kit (`graphnet.testing`): every built-in passes its check, and each check
catches the mistake it exists for, saying what was expected and what was got."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

import graphnet
from graphnet.registry import get_registry
from graphnet.testing import check_data_source, check_metric, check_optimizer, check_schedule


def builtins(kind: str) -> list[str]:
    return sorted(
        name for name, entry in get_registry().entries(kind).items() if entry.package == "graphnet"
    )


@pytest.mark.parametrize("name", builtins("optimizer"))
def test_every_built_in_optimizer_passes_check_optimizer(name):
    """Built-in optimizers update in place, keep float32, and resume to the same bits."""
    check_optimizer(get_registry().get("optimizer", name), {"lr": 0.01})


@pytest.mark.parametrize("name", builtins("metric"))
def test_every_built_in_metric_passes_check_metric(name):
    """Built-in metrics give the whole set's value however the batches fall (a batch of 1
    included) on predictions and targets of the kind they are for."""
    rng = np.random.default_rng(0)
    if name in ("accuracy", "precision", "recall", "f1"):
        prediction, target = rng.standard_normal((10, 3)), rng.integers(0, 3, (10, 1)) * 1.0
    elif name == "auc":
        prediction, target = rng.standard_normal((10, 1)), np.array([[0, 1] * 5]).T * 1.0
    else:
        prediction, target = rng.standard_normal((10, 2)), rng.standard_normal((10, 2))
    metric = get_registry().get("metric", name)
    if name == "auc":  # not defined on one class: check the whole set only
        assert 0 <= metric().compute(prediction, target) <= 1
        return
    assert np.isfinite(check_metric(metric, prediction, target))


@pytest.mark.parametrize("name", builtins("schedule"))
def test_every_built_in_schedule_passes_check_schedule(name):
    """Built-in schedules are pure functions of epoch, base rate and history."""
    options = {"every": 3} if name == "step" else {"epochs": 20} if "cosine" in name else {}
    if name == "warmup_cosine":
        options["warmup"] = 2
    if name in ("step", "exponential"):
        options["gamma"] = 0.5
    rates = check_schedule(get_registry().get("schedule", name), options)
    assert len(rates) == 20 and rates[0] > 0


def test_check_data_source_passes_the_synthetic_source():
    """The synthetic source gives the same arrays for one seed, samples on axis 0."""
    arrays = check_data_source(
        get_registry().get("data source", "synthetic"), {"function": "product", "samples": 20}
    )
    assert arrays["x"].shape == (20, 2)


class Replacing(graphnet.Optimizer):
    type = "replacing_kit_test"

    def step(self, params, grads, state):
        for key in params:
            params[key] = params[key] - 0.1 * grads[key]  # a new array: the engine never sees it


class Stateful(graphnet.Optimizer):
    type = "stateful_kit_test"

    def init_state(self, params):
        return {}

    def step(self, params, grads, state):
        self.calls = getattr(self, "calls", 0) + 1  # state outside `state`: lost on resume
        for key, p in params.items():
            p -= self.calls * 0.1 * grads[key]


class MeanOfBatches(graphnet.Metric):
    type = "mean_of_batches_kit_test"

    def compute(self, prediction, target):
        return float(np.sqrt(np.mean((prediction - target) ** 2)))  # RMSE is no batch mean


class Drifting(graphnet.Schedule):
    type = "drifting_kit_test"
    seen = 0

    def lr(self, epoch, base_lr, history):
        Drifting.seen += 1  # state between calls
        return base_lr / Drifting.seen


class Unseeded(graphnet.DataSource):
    type = "unseeded_kit_test"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

    def load(self, base_dir, rng):
        return {"x": np.random.default_rng().random((4, 2))}


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        (lambda: check_optimizer(Replacing), "replaced params"),
        (lambda: check_optimizer(Stateful), "resumed run"),
        (
            lambda: check_metric(MeanOfBatches, np.arange(6.0)[:, None], np.zeros((6, 1))),
            "must accumulate",
        ),
        (lambda: check_schedule(Drifting), "a schedule must be a function"),
        (lambda: check_data_source(Unseeded), "differs between two loads"),
    ],
    ids=[
        "optimizer-replaces",
        "optimizer-hidden-state",
        "metric-not-a-mean",
        "schedule-state",
        "source-unseeded",
    ],
)
def test_each_check_catches_its_mistake(check, expected):
    """Each check raises AssertionError saying what was expected."""
    with pytest.raises(AssertionError, match=expected):
        check()
