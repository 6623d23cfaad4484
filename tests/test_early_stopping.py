"""train.early_stopping: Keras' rule (stop at best + patience), best.npz, restore_best,
results.json, the `done:` line, refusals at validation, and resuming anywhere to the same bits
(with a schedule, clipping and an accumulating metric on as well)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from training_specs import MLP, arrays, linear_data, rows, run, write_spec

from graphnet.cli import cli


def overfit_spec(directory: Path, **train: Any) -> Path:
    """A 32-unit network on 12 noisy samples: the validation loss falls, then rises."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 3))
    np.savez(directory / "data.npz", x=x, y=x[:, :1] + rng.normal(size=(24, 1)))
    options = {"epochs": 400, "optimizer": {"type": "adam", "lr": 0.02}, **train}
    return write_spec(directory, MLP, validation=0.5, **options)


def keras_stop(values: list[float], patience: int, min_delta: float, mode: str) -> tuple[int, int]:
    """Keras' EarlyStopping written out: (best epoch, last epoch) of a column's values."""
    sign = 1 if mode == "min" else -1
    best, best_epoch, wait = math.inf, 0, 0
    for epoch, value in enumerate(values, start=1):
        if sign * value + min_delta < best:
            best, best_epoch, wait = sign * value, epoch, 0
        else:
            wait += 1
            if wait >= patience:
                return best_epoch, epoch
    return best_epoch, len(values)


def test_stops_at_the_best_epoch_plus_patience(tmp_path):
    """On a run that overfits, training stops `patience` epochs after the lowest val_loss;
    results.json and the done: line name that epoch and its value."""
    spec = overfit_spec(tmp_path, early_stopping={"patience": 4})
    result = run(spec, tmp_path / "run")
    assert result.exit_code == 0, result.output
    table = rows(tmp_path / "run")
    values = [row["val_loss"] for row in table]
    best_epoch = int(np.argmin(values)) + 1
    assert len(table) == best_epoch + 4 < 400
    assert keras_stop(values, 4, 0.0, "min") == (best_epoch, len(table))
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["stopped"] == "early_stopping"
    assert results["epochs"] == len(table)
    assert (results["monitor"], results["best_epoch"]) == ("val_loss", best_epoch)
    assert results["best"] == min(values)
    assert results["final"]["epoch"] == len(table)
    assert results["final"]["val_loss"] == values[-1]
    assert f"best val_loss {min(values):.6g} at epoch {best_epoch}" in result.output
    assert "(early stopping)" in result.output


@pytest.mark.parametrize("mode, min_delta", [("min", 0.05), ("max", 0.0), ("max", 0.3)])
def test_mode_and_min_delta_follow_keras(tmp_path, mode, min_delta):
    """mode max and min_delta decide what counts as an improvement exactly as Keras does."""
    spec = overfit_spec(
        tmp_path,
        metrics=["mae"],
        early_stopping={"monitor": "val_mae", "mode": mode, "patience": 3, "min_delta": min_delta},
    )
    assert run(spec, tmp_path / "run").exit_code == 0
    values = [row["val_mae"] for row in rows(tmp_path / "run")]
    best_epoch, last = keras_stop(values, 3, min_delta, mode)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert (results["best_epoch"], results["epochs"]) == (best_epoch, last)


def test_best_npz_holds_the_best_epoch_and_weights_too_with_restore_best(tmp_path):
    """best.npz is the weights of the best epoch (the same bits as a run that ends there), and
    weights.npz equals it with restore_best (the default); without, weights.npz is the last
    epoch's."""
    spec = overfit_spec(tmp_path, early_stopping={"patience": 4})
    assert run(spec, tmp_path / "run").exit_code == 0
    best_epoch = json.loads((tmp_path / "run" / "results.json").read_text())["best_epoch"]
    best = arrays(tmp_path / "run" / "best.npz")
    assert run(spec, tmp_path / "short", "--set", f"train.epochs={best_epoch}").exit_code == 0
    reference = arrays(tmp_path / "short" / "weights.npz")
    assert best.keys() == reference.keys()
    for key in best:
        np.testing.assert_array_equal(best[key], reference[key])
        np.testing.assert_array_equal(arrays(tmp_path / "run" / "weights.npz")[key], best[key])
    keep_last = ["--set", "train.early_stopping.restore_best=false"]
    assert run(spec, tmp_path / "last", *keep_last).exit_code == 0
    last = arrays(tmp_path / "last" / "weights.npz")
    assert not np.array_equal(last["hidden/W"], best["hidden/W"])


def test_without_early_stopping_results_name_the_best_val_loss(tmp_path):
    """Without early stopping a run completes; results.json monitors val_loss (with
    validation, else loss) and no best.npz is written."""
    spec = overfit_spec(tmp_path, epochs=12)
    assert run(spec, tmp_path / "run").exit_code == 0
    values = [row["val_loss"] for row in rows(tmp_path / "run")]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["stopped"] == "completed" and results["epochs"] == 12
    assert results["monitor"] == "val_loss"
    assert (results["best_epoch"], results["best"]) == (int(np.argmin(values)) + 1, min(values))
    assert not (tmp_path / "run" / "best.npz").exists()
    linear_data(tmp_path)
    assert run(write_spec(tmp_path), tmp_path / "plain").exit_code == 0
    assert json.loads((tmp_path / "plain" / "results.json").read_text())["monitor"] == "loss"


FEATURES = {  # 23 epochs, the best is the 17th; the rate halves from epoch 20
    "optimizer": {"type": "adam", "lr": 0.002},
    "early_stopping": {"patience": 6},
    "lr_schedule": {"type": "plateau", "patience": 1, "factor": 0.5},
    "clip_grad_norm": 0.5,
    "metrics": ["r2", "mae"],
    "batch_size": 5,
    "shuffle": True,
}


@pytest.mark.parametrize("k", [1, 5, 17, 19, 22])
def test_a_run_stopped_after_any_epoch_resumes_to_the_same_bits(tmp_path, k):
    """Stopped after epoch k (train.epochs=k) and resumed, a run with early stopping, a
    plateau schedule, clipping and accumulating metrics ends as one that never stopped:
    weights.npz, best.npz, checkpoint.npz, metrics.csv (but `seconds`) and results.json."""
    spec = overfit_spec(tmp_path, **FEATURES)
    assert run(spec, tmp_path / "whole").exit_code == 0
    whole = rows(tmp_path / "whole")
    assert k < len(whole) < 400
    assert run(spec, tmp_path / "parts", "--set", f"train.epochs={k}").exit_code == 0
    assert run(spec, tmp_path / "parts", "--resume").exit_code == 0
    for name in ("weights.npz", "best.npz", "checkpoint.npz"):
        expected, got = arrays(tmp_path / "whole" / name), arrays(tmp_path / "parts" / name)
        assert expected.keys() == got.keys(), name
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{name} {key}")

    def without_seconds(table: list[dict[str, float]]) -> list[dict[str, float]]:
        return [{c: v for c, v in row.items() if c != "seconds"} for row in table]

    assert without_seconds(rows(tmp_path / "parts")) == without_seconds(whole)
    results = [json.loads((tmp_path / f / "results.json").read_text()) for f in ("whole", "parts")]
    for r in results:
        del r["final"]["seconds"]
    assert results[0] == results[1]


def test_resuming_a_run_that_stopped_early_trains_no_more(tmp_path):
    """--resume with more epochs on a run that stopped early keeps it as it is."""
    spec = overfit_spec(tmp_path, early_stopping={"patience": 3})
    assert run(spec, tmp_path / "run").exit_code == 0
    before = rows(tmp_path / "run")
    result = run(spec, tmp_path / "run", "--resume", "--set", "train.epochs=500")
    assert result.exit_code == 0, result.output
    assert rows(tmp_path / "run") == before
    assert "(early stopping)" in result.output


def test_a_damaged_checkpoint_names_the_missing_key(tmp_path):
    """A checkpoint without early stopping's counters is refused naming the file and the key."""
    spec = overfit_spec(tmp_path, epochs=3, early_stopping={"patience": 4})
    assert run(spec, tmp_path / "run").exit_code == 0
    checkpoint = tmp_path / "run" / "checkpoint.npz"
    kept = {k: v for k, v in arrays(checkpoint).items() if k != "early_stopping/wait"}
    np.savez(checkpoint, **kept)  # type: ignore[arg-type]
    result = run(spec, tmp_path / "run", "--resume", "--set", "train.epochs=5")
    assert result.exit_code == 2
    assert str(checkpoint) in result.stderr
    assert "'early_stopping/wait'" in result.stderr


@pytest.mark.parametrize(
    "early_stopping, path, message",
    [
        (
            {"monitor": "val_mea"},
            "monitor",
            "'val_mea', which is not a column of metrics.csv (did you mean 'val_mae'?)",
        ),
        ({"monitor": "lr"}, "monitor", "not a column"),
        ({"patience": 0}, "patience", "greater than or equal to 1"),
        ({"mode": "lowest"}, "mode", "'min' or 'max'"),
    ],
)
def test_bad_early_stopping_is_refused_at_its_line(tmp_path, early_stopping, path, message):
    """An unknown column (lr is one only with a schedule), patience 0 or a bad mode exits 2
    at validation, located at the spec line of the key."""
    spec = overfit_spec(tmp_path, metrics=["mae"], early_stopping=early_stopping)
    lines = spec.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.strip().startswith(f"{path}:"))
    for command in ("validate", "run"):
        result = CliRunner().invoke(cli, [command, str(spec)])
        assert result.exit_code == 2, result.output
        assert f"{spec}:{line}: train.early_stopping.{path}: " in result.stderr
        assert message in result.stderr


def test_the_default_monitor_needs_a_validation_split(tmp_path):
    """early_stopping's default monitor, val_loss, without data.validation is refused saying
    that val_ columns need a validation split."""
    linear_data(tmp_path)
    spec = write_spec(tmp_path, early_stopping={"patience": 3})
    result = CliRunner().invoke(cli, ["validate", str(spec)])
    assert result.exit_code == 2
    assert "train.early_stopping.monitor: early stopping monitors 'val_loss'" in result.stderr
    assert "need a validation split: data.validation" in result.stderr
