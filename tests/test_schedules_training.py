"""train.lr_schedule in a run: the `lr` column, the rate the optimizer really uses (against
closed forms and, where PyTorch is installed, torch.optim.lr_scheduler driving torch's SGD),
and the refusal of an optimizer without `lr`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from training_specs import arrays, linear_data, rows, run, write_spec

LR = 0.1
EPOCHS = 12


def numpy_sgd(data: np.ndarray, rates: list[float]) -> np.ndarray:
    """Full-batch SGD from zeros on y ≈ x·W + b with MSE, epoch e at rate rates[e - 1]."""
    x, y = data[:, :-1], data[:, -1:]
    W, b = np.zeros((x.shape[1], 1)), np.zeros(1)
    for lr in rates:
        err = x @ W + b - y
        W, b = W - lr * 2 * x.T @ err / len(x), b - lr * 2 * err.sum(axis=0) / len(x)
    return np.concatenate([W.ravel(), b])


def scheduled_run(tmp_path, schedule: dict[str, Any]) -> tuple[list[dict[str, float]], np.ndarray]:
    spec = write_spec(
        tmp_path, epochs=EPOCHS, optimizer={"type": "sgd", "lr": LR}, lr_schedule=schedule
    )
    result = run(spec, tmp_path / "run")
    assert result.exit_code == 0, result.output
    weights = arrays(tmp_path / "run" / "weights.npz")
    return rows(tmp_path / "run"), np.concatenate([weights["out/W"].ravel(), weights["out/b"]])


CLOSED_FORMS = {
    "step": ({"type": "step", "every": 3, "gamma": 0.5}, lambda e: LR * 0.5 ** ((e - 1) // 3)),
    "exponential": ({"type": "exponential", "gamma": 0.8}, lambda e: LR * 0.8 ** (e - 1)),
    "cosine": (
        {"type": "cosine", "epochs": 8, "min_lr": 0.01},
        lambda e: 0.01 + (LR - 0.01) * (1 + math.cos(math.pi * min(e - 1, 8) / 8)) / 2,
    ),
    "warmup_cosine": (
        {"type": "warmup_cosine", "warmup": 3, "epochs": 10},
        lambda e: LR * e / 3 if e <= 3 else LR * (1 + math.cos(math.pi * min(e - 4, 7) / 7)) / 2,
    ),
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_lr_column_and_weights_follow_the_closed_form(tmp_path, name):
    """metrics.csv's lr column is the schedule's closed form, placed before `seconds`, and
    the optimizer trains with it: the weights are those of numpy SGD at those rates."""
    schedule, closed_form = CLOSED_FORMS[name]
    data = linear_data(tmp_path)
    table, weights = scheduled_run(tmp_path, schedule)
    expected = [closed_form(e) for e in range(1, EPOCHS + 1)]
    np.testing.assert_allclose([row["lr"] for row in table], expected, rtol=1e-12)
    assert list(table[0])[-2:] == ["lr", "seconds"]
    np.testing.assert_allclose(weights, numpy_sgd(data, expected), rtol=1e-10, atol=1e-12)


TORCH = {
    "step": ({"type": "step", "every": 3, "gamma": 0.5}, "StepLR", {"step_size": 3, "gamma": 0.5}),
    "exponential": ({"type": "exponential", "gamma": 0.8}, "ExponentialLR", {"gamma": 0.8}),
    "cosine": (
        {"type": "cosine", "epochs": EPOCHS, "min_lr": 0.01},
        "CosineAnnealingLR",
        {"T_max": EPOCHS, "eta_min": 0.01},
    ),
    "plateau": (
        {"type": "plateau", "monitor": "loss", "patience": 1, "factor": 0.5, "threshold": 0.5},
        "ReduceLROnPlateau",
        {"patience": 1, "factor": 0.5, "threshold": 0.5},
    ),
}


@pytest.mark.parametrize("name", sorted(TORCH))
def test_a_scheduled_run_matches_torch(tmp_path, name):
    """torch's SGD driven by the namesake torch.optim.lr_scheduler (stepped once per epoch,
    plateau with the epoch's loss) uses the rates of the lr column and ends at the same weights."""
    torch = pytest.importorskip("torch")
    schedule, torch_name, options = TORCH[name]
    data = linear_data(tmp_path)
    table, weights = scheduled_run(tmp_path, schedule)
    x, y = torch.tensor(data[:, :-1]), torch.tensor(data[:, -1:])
    model = torch.nn.Linear(x.shape[1], 1, dtype=torch.float64)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    scheduler = getattr(torch.optim.lr_scheduler, torch_name)(optimizer, **options)
    rates = []
    for _ in range(EPOCHS):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        scheduler.step(loss.item()) if torch_name == "ReduceLROnPlateau" else scheduler.step()
    assert len(set(rates)) > 1  # the schedule did change the rate
    np.testing.assert_allclose([row["lr"] for row in table], rates, rtol=1e-12)
    expected = np.concatenate([model.weight.detach().numpy().ravel(), model.bias.detach().numpy()])
    np.testing.assert_allclose(weights, expected, rtol=1e-10, atol=1e-12)


NO_LR = '''
import graphnet
from pydantic import BaseModel, ConfigDict


class Fixed(graphnet.Optimizer):
    """Steps of a fixed size 0.01."""

    type = "fixed_step"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

    def step(self, params, grads, state):
        for key, value in params.items():
            value -= 0.01 * grads[key]


@graphnet.hookimpl
def graphnet_optimizers():
    return [Fixed]
'''


def test_a_schedule_needs_an_optimizer_with_lr(tmp_path):
    """A schedule with an optimizer whose options have no `lr` exits 2 at validation, located
    at train.lr_schedule and naming the optimizer."""
    from click.testing import CliRunner

    from graphnet.cli import cli

    linear_data(tmp_path)
    plugin = tmp_path / "fixed_step.py"
    plugin.write_text(NO_LR, encoding="utf-8")
    spec = write_spec(
        tmp_path,
        optimizer={"type": "fixed_step"},
        lr_schedule={"type": "exponential", "gamma": 0.9},
    )
    line = spec.read_text().splitlines().index("  lr_schedule:") + 2  # where its keys begin
    for command in ("validate", "run"):
        result = CliRunner().invoke(cli, [command, str(spec), "--plugin", str(plugin)])
        assert result.exit_code == 2, result.output
        assert f"{spec}:{line}: train.lr_schedule: " in result.stderr
        assert "optimizer 'fixed_step' has no `lr` option" in result.stderr
    without = CliRunner().invoke(
        cli, ["validate", str(spec), "--plugin", str(plugin), "--set", "train.lr_schedule=null"]
    )
    assert without.exit_code == 0, without.output


BAD_SCHEDULE = '''
import graphnet


class Words(graphnet.Schedule):
    """A rate that is not a number."""

    type = "words"

    def lr(self, epoch, base_lr, history):
        return "fast" if epoch == 1 else -1.0


@graphnet.hookimpl
def graphnet_schedules():
    return [Words]
'''


def test_a_schedule_returning_no_rate_is_named(tmp_path):
    """A schedule whose lr is not a number fails the run (exit 1) naming the schedule, the
    method and the plugin file."""
    from click.testing import CliRunner

    from graphnet.cli import cli

    linear_data(tmp_path)
    plugin = tmp_path / "words.py"
    plugin.write_text(BAD_SCHEDULE, encoding="utf-8")
    spec = write_spec(tmp_path, lr_schedule={"type": "words"})
    result = CliRunner().invoke(cli, ["run", str(spec), "--plugin", str(plugin), "-q"])
    assert result.exit_code == 1
    assert "schedule 'words': lr returned str, not a number" in result.stderr
    assert "words.py" in result.stderr
