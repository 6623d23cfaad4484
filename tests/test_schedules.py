"""Learning-rate schedules: closed forms, statelessness (a resumed run gets the same rates) and,
where PyTorch is installed, torch.optim.lr_scheduler's rates over 30 epochs."""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import pytest

import graphnet
from graphnet.registry import get_registry

EPOCHS = 30
BASE_LR = 0.1


def schedule(name: str, **options: Any) -> Any:
    return get_registry().entries("schedule")[name].cls(options)


def rates(s: Any, history: list[dict[str, Any]] | None = None, epochs: int = EPOCHS) -> list[float]:
    """The rate of epochs 1..epochs, each given only the records of the epochs before it."""
    history = history or []
    return [s.lr(e, BASE_LR, history[: e - 1]) for e in range(1, epochs + 1)]


def test_schedules_are_a_plugin_kind() -> None:
    """graphnet.Schedule is public, and the built-ins register through graphnet_schedules."""
    entries = get_registry().entries("schedule")
    assert {"step", "exponential", "cosine", "warmup_cosine", "plateau"} <= set(entries)
    for entry in entries.values():
        assert issubclass(entry.cls, graphnet.Schedule)
        assert entry.package == "graphnet"


def test_step_and_exponential_closed_forms() -> None:
    """step: base·gamma^⌊(e-1)/every⌋; exponential: base·gamma^(e-1)."""
    assert rates(schedule("step", every=3, gamma=0.5), epochs=7) == pytest.approx(
        [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025], rel=1e-15
    )
    assert rates(schedule("exponential", gamma=0.9), epochs=3) == pytest.approx(
        [0.1, 0.09, 0.081], rel=1e-15
    )


def test_cosine_goes_from_base_to_min_and_stays() -> None:
    """cosine: base at epoch 1, halfway at epochs/2 + 1, min_lr at epochs + 1 and after."""
    s = schedule("cosine", epochs=10, min_lr=0.01)
    lr = rates(s, epochs=15)
    assert lr[0] == BASE_LR
    assert lr[5] == pytest.approx((BASE_LR + 0.01) / 2, rel=1e-14)
    assert lr[10:] == [pytest.approx(0.01, rel=1e-14)] * 5
    assert all(a > b for a, b in pairwise(lr[:11]))


def test_warmup_cosine_closed_form() -> None:
    """warmup_cosine: base·e/warmup up to warmup, base again at warmup + 1, then cosine over
    epochs - warmup epochs down to min_lr (reached at epochs + 1), constant after."""
    s = schedule("warmup_cosine", warmup=4, epochs=12, min_lr=0.0)
    lr = rates(s, epochs=16)
    assert lr[:5] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1], rel=1e-15)
    t = [e - 4 - 1 for e in range(5, 13)]
    assert lr[4:12] == pytest.approx([0.05 * (1 + math.cos(math.pi * k / 8)) for k in t])
    assert lr[12:] == [0.0] * 4


def test_warmup_cosine_without_warmup_is_cosine() -> None:
    """warmup 0 gives the rates of `cosine`."""
    a = rates(schedule("warmup_cosine", warmup=0, epochs=20, min_lr=0.001))
    assert a == rates(schedule("cosine", epochs=20, min_lr=0.001))


def test_warmup_must_end_before_the_last_epoch() -> None:
    """warmup >= epochs is an options error naming both."""
    with pytest.raises(ValueError, match=r"warmup \(10\) must be less than epochs \(10\)"):
        schedule("warmup_cosine", warmup=10, epochs=10)


def _history(values: list[float], column: str = "val_loss") -> list[dict[str, Any]]:
    return [{"epoch": i, "loss": 1.0, column: v, "seconds": 0.1} for i, v in enumerate(values, 1)]


# improves, then a plateau (changes below the 1e-4 relative threshold), a dip, another plateau
PLATEAU = [1.0, 0.8, 0.7, 0.69995, 0.7, 0.71, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
PLATEAU += [0.5, 0.5, 0.5, 0.5, 0.5, 0.49, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]


def test_plateau_closed_form() -> None:
    """plateau with patience 2: the rate drops by factor after 3 epochs without a relative
    improvement of 1e-4, and the count starts again."""
    s = schedule("plateau", factor=0.5, patience=2)
    history = _history([1.0, 0.9, 0.95, 0.9, 0.91, 0.92, 0.93, 0.94])
    assert rates(s, history, epochs=9) == pytest.approx(
        [0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025], rel=1e-15
    )


def test_plateau_is_a_function_of_the_history() -> None:
    """The rate of an epoch depends only on the records before it: calling lr again, in any
    order or on a fresh instance (a resumed run), gives the same number."""
    history = _history(PLATEAU)
    forward = rates(schedule("plateau", patience=3), history)
    backward = [
        schedule("plateau", patience=3).lr(e, BASE_LR, history[: e - 1])
        for e in range(EPOCHS, 0, -1)
    ]
    assert forward == backward[::-1]
    assert min(forward) < BASE_LR


def test_plateau_names_a_missing_column() -> None:
    """Monitoring a column that metrics.csv does not have is an error naming the columns."""
    with pytest.raises(graphnet.SpecError, match=r"'val_loss'.*epoch, loss, f1, seconds"):
        schedule("plateau").lr(2, BASE_LR, _history([0.5], column="f1"))


def test_plateau_in_max_mode() -> None:
    """mode max: higher is better (an accuracy)."""
    s = schedule("plateau", monitor="val_accuracy", mode="max", patience=0, factor=0.5)
    history = _history([0.5, 0.6, 0.6, 0.7], column="val_accuracy")
    assert rates(s, history, epochs=5) == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05])


# -- against torch.optim.lr_scheduler ---------------------------------------------------------


def _torch_rates(make: Callable[[Any, Any], Any], metric: list[float] | None = None) -> list[float]:
    """The rate torch's scheduler sets for each of EPOCHS epochs, stepped once per epoch."""
    torch = pytest.importorskip("torch")
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=BASE_LR)
    scheduler = make(torch.optim.lr_scheduler, optimizer)
    out = []
    for epoch in range(EPOCHS):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if metric is None:
            scheduler.step()
        else:
            scheduler.step(metric[epoch])
    return out


@pytest.mark.parametrize(
    ("name", "options", "make"),
    [
        ("step", {"every": 7, "gamma": 0.3}, lambda s, o: s.StepLR(o, step_size=7, gamma=0.3)),
        ("step", {"every": 1}, lambda s, o: s.StepLR(o, step_size=1)),
        ("exponential", {"gamma": 0.93}, lambda s, o: s.ExponentialLR(o, gamma=0.93)),
        (
            "cosine",
            {"epochs": 30, "min_lr": 0.002},
            lambda s, o: s.CosineAnnealingLR(o, T_max=30, eta_min=0.002),
        ),
        ("cosine", {"epochs": 29}, lambda s, o: s.CosineAnnealingLR(o, T_max=29)),
        (
            "warmup_cosine",
            {"warmup": 5, "epochs": 30, "min_lr": 0.001},
            lambda s, o: s.SequentialLR(
                o,
                [
                    s.LinearLR(o, start_factor=1 / 5, end_factor=1.0, total_iters=4),
                    s.CosineAnnealingLR(o, T_max=25, eta_min=0.001),
                ],
                milestones=[5],
            ),
        ),
    ],
)
def test_schedules_match_torch(name: str, options: dict[str, Any], make: Any) -> None:
    """Each schedule gives torch.optim.lr_scheduler's rates to 1e-9 over 30 epochs."""
    expected = _torch_rates(make)
    assert rates(schedule(name, **options)) == pytest.approx(expected, rel=0, abs=1e-9)


@pytest.mark.parametrize(
    ("options", "torch_options"),
    [
        ({"patience": 3}, {"patience": 3}),
        ({"patience": 0, "factor": 0.5}, {"patience": 0, "factor": 0.5}),
        ({"patience": 2, "min_lr": 0.004}, {"patience": 2, "min_lr": 0.004}),
        ({"patience": 1, "threshold": 0.05}, {"patience": 1, "threshold": 0.05}),
    ],
)
def test_plateau_matches_torch_on_a_synthetic_history(
    options: dict[str, Any], torch_options: dict[str, Any]
) -> None:
    """plateau gives ReduceLROnPlateau's rates (mode min, rel threshold) over a 30-epoch
    history with improvements, plateaus and changes below the threshold."""
    expected = _torch_rates(lambda s, o: s.ReduceLROnPlateau(o, **torch_options), PLATEAU)
    assert min(expected) < BASE_LR
    got = rates(schedule("plateau", **options), _history(PLATEAU))
    assert got == pytest.approx(expected, rel=0, abs=1e-9)


def test_plateau_max_mode_matches_torch() -> None:
    """mode max gives ReduceLROnPlateau(mode='max')'s rates."""
    values = [-v for v in PLATEAU]
    expected = _torch_rates(lambda s, o: s.ReduceLROnPlateau(o, mode="max", patience=2), values)
    s = schedule("plateau", monitor="val_score", mode="max", patience=2)
    assert rates(s, _history(values, "val_score")) == pytest.approx(expected, rel=0, abs=1e-9)
