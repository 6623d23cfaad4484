"""Metrics in a run: an accumulating metric (rmse, r2, auc) is the metric of the whole epoch,
not the average of its batches; a NaN metric is written and warned about once."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import yaml
from training_specs import linear_data, rows, run, write_spec

import graphnet
from graphnet import GraphnetWarning
from graphnet.dataset import split, streams

BATCH = 7


def test_accumulated_metrics_are_those_of_the_whole_epoch(tmp_path):
    """With mini-batches, the training and validation rmse and r2 equal numpy's over every
    sample of the epoch (here the parameters barely move: lr 1e-300), and differ from the
    average of per-batch values; mae stays a batch average, which is exact for a mean."""
    data = linear_data(tmp_path, n=50)
    spec = write_spec(
        tmp_path,
        epochs=2,
        batch_size=BATCH,
        shuffle=True,
        validation=0.3,
        metrics=["rmse", "r2", "mae"],
        optimizer={"type": "sgd", "lr": 1e-300},
    )
    weights = {"out/W": np.array([[0.5], [1.0], [2.0]]), "out/b": np.array([0.25])}
    np.savez(tmp_path / "start.npz", **weights)  # type: ignore[arg-type]
    result = run(spec, tmp_path / "run", "--weights", str(tmp_path / "start.npz"))
    assert result.exit_code == 0, result.output
    table = rows(tmp_path / "run")

    def rmse(e: np.ndarray) -> float:
        return float(np.sqrt(np.mean(e**2)))

    def r2(e: np.ndarray, t: np.ndarray) -> float:
        return float(1 - np.sum(e**2) / np.sum((t - t.mean()) ** 2))

    arrays = {"x": data[:, :3], "y": data[:, 3:]}  # split as the run splits them
    train, val = split(arrays, 0.3, streams(graphnet.load_spec(spec).seed)["split"])
    for prefix, part in (("", train), ("val_", val)):
        e = (part["x"] @ weights["out/W"] + weights["out/b"] - part["y"]).ravel()
        for row in table:
            assert row[f"{prefix}rmse"] == pytest.approx(rmse(e), rel=1e-12)
            assert row[f"{prefix}r2"] == pytest.approx(r2(e, part["y"].ravel()), rel=1e-12)
            assert row[f"{prefix}mae"] == pytest.approx(float(np.abs(e).mean()), rel=1e-12)
        batches = [e[i : i + BATCH] for i in range(0, len(e), BATCH)]
        averaged = sum(rmse(b) * len(b) for b in batches) / len(e)
        assert abs(averaged - rmse(e)) > 1e-3


def test_a_nan_metric_is_written_and_warned_about_once(tmp_path):
    """auc of a set holding one class is NaN: metrics.csv holds nan in every epoch and the run
    warns once, naming the metric."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.normal(size=(20, 2)), y=np.zeros((20, 1)))
    spec = write_spec(tmp_path, features=2, epochs=3, metrics=["auc"])
    text = yaml.safe_load(spec.read_text())
    text["loss"] = {"type": "bce", "inputs": ["out", "y"]}
    spec.write_text(yaml.safe_dump(text), encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graphnet.train(spec, tmp_path / "run")
    said = [w for w in caught if issubclass(w.category, GraphnetWarning)]
    assert len(said) == 1
    assert "metric 'auc' is NaN in epoch 1" in str(said[0].message)
    assert all(np.isnan(row["auc"]) for row in rows(tmp_path / "run"))
