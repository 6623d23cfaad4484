"""The metric protocol (batch metrics and accumulating ones) and the built-in metrics rmse, r2,
precision, recall, f1 and auc against closed forms on whole sets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import graphnet
from graphnet.registry import get_registry


def metric(name: str) -> Any:
    return get_registry().entries("metric")[name].cls()


def over_batches(m: Any, prediction: np.ndarray, target: np.ndarray, size: int = 7) -> float:
    """What the engine does with an accumulating metric over one epoch."""
    m.reset()
    for start in range(0, len(prediction), size):
        m.update(prediction[start : start + size], target[start : start + size])
    return float(m.result())


def batch_average(m: Any, prediction: np.ndarray, target: np.ndarray, size: int = 7) -> float:
    """What the engine does with a batch metric: compute per batch, weighted by batch size."""
    total = 0.0
    for start in range(0, len(prediction), size):
        p, t = prediction[start : start + size], target[start : start + size]
        total += m.compute(p, t) * len(p)
    return total / len(prediction)


_rng = np.random.default_rng(11)
REGRESSION = (
    _rng.standard_normal((50, 3)),
    _rng.standard_normal((50, 3)) * np.array([0.5, 1.0, 3.0]),
)
LOGITS = _rng.standard_normal((60, 4))
IDS = _rng.integers(0, 4, (60, 1)).astype(float)
SCORES = np.round(_rng.standard_normal((80, 1)), 1)  # rounded: many ties
FLAGS = (_rng.random((80, 1)) < 0.4).astype(float)


def test_which_metrics_accumulate() -> None:
    """mae and accuracy are batch averages (exact); rmse, r2, precision, recall, f1 and auc
    accumulate over the whole epoch."""
    entries = get_registry().entries("metric")
    accumulating = sorted(name for name, e in entries.items() if e.cls.accumulates)
    assert {"mae", "accuracy"}.isdisjoint(accumulating)
    assert {"rmse", "r2", "precision", "recall", "f1", "auc"} <= set(accumulating)


def test_a_metric_that_overrides_update_accumulates() -> None:
    """Subclassing graphnet.Metric and implementing update makes a metric accumulating; one
    implementing compute only stays a batch metric; compute of an accumulating one is its
    result on that one batch."""

    class Batch(graphnet.Metric):
        type = "batch"

        def compute(self, prediction: Any, target: Any) -> float:
            return 1.0

    class Largest(graphnet.Metric):
        type = "largest"

        def reset(self) -> None:
            self.largest = -np.inf

        def update(self, prediction: Any, target: Any) -> None:
            self.largest = max(self.largest, float(prediction.max()))

        def result(self) -> float:
            return self.largest

    assert not Batch.accumulates and Largest.accumulates
    largest = Largest()  # reset on creation
    largest.update(np.array([[3.0]]), np.array([[0.0]]))
    largest.update(np.array([[1.0]]), np.array([[0.0]]))
    assert largest.result() == 3.0
    assert largest.compute(np.array([[2.0]]), np.array([[0.0]])) == 2.0
    with pytest.raises(NotImplementedError, match="neither compute nor update"):
        graphnet.Metric().compute(np.zeros((1, 1)), np.zeros((1, 1)))


def test_rmse_is_the_root_of_the_whole_sets_mean_square() -> None:
    """rmse over batches is sqrt(mean((p - t)²)) over every element of the set."""
    p, t = REGRESSION
    assert over_batches(metric("rmse"), p, t) == pytest.approx(
        np.sqrt(np.mean((p - t) ** 2)), rel=1e-13
    )
    assert metric("rmse").compute(np.array([[3.0], [0.0]]), np.array([[0.0], [4.0]])) == (
        pytest.approx(np.sqrt(12.5))
    )


def test_r2_is_one_minus_ss_res_over_ss_tot_averaged_over_columns() -> None:
    """r2: per column 1 - Σ(t - p)² / Σ(t - mean t)² over the whole set, then the plain mean of
    the columns (sklearn's r2_score default)."""
    p, t = REGRESSION
    p = t + 0.3 * p  # a decent fit
    per_column = 1 - ((t - p) ** 2).sum(0) / ((t - t.mean(0)) ** 2).sum(0)
    assert over_batches(metric("r2"), p, t) == pytest.approx(per_column.mean(), rel=1e-12)
    assert (
        metric("r2").compute(np.array([[1.0], [2.0], [3.0]]), np.array([[1.0], [2.0], [3.0]]))
        == 1.0
    )
    # predicting the mean scores 0
    assert metric("r2").compute(np.full((4, 1), 2.5), np.array([[1.0], [2.0], [3.0], [4.0]])) == 0.0


def test_r2_of_a_constant_target_is_one_if_exact_else_zero() -> None:
    """A constant target column has no spread: exact predictions score 1, others 0."""
    t = np.array([[2.0, 1.0], [2.0, 3.0]])
    assert metric("r2").compute(np.array([[2.0, 1.0], [2.0, 3.0]]), t) == 1.0
    assert metric("r2").compute(np.array([[2.5, 1.0], [2.0, 3.0]]), t) == 0.5


def test_r2_merges_batches_without_losing_precision() -> None:
    """r2 of targets far from 0 (1e8 ± 1) over many small batches matches the closed form."""
    rng = np.random.default_rng(2)
    t = 1e8 + rng.standard_normal((1000, 1))
    p = t + 0.5 * rng.standard_normal((1000, 1))
    expected = 1 - ((t - p) ** 2).sum() / ((t - t.mean()) ** 2).sum()
    assert over_batches(metric("r2"), p, t, size=3) == pytest.approx(expected, abs=1e-9)


def _macro(score: str, predicted: np.ndarray, actual: np.ndarray) -> float:
    """Macro average over the classes that occur in either, 0 where a denominator is 0."""
    values = []
    for k in np.union1d(predicted, actual):
        tp = np.sum((predicted == k) & (actual == k))
        fp = np.sum((predicted == k) & (actual != k))
        fn = np.sum((predicted != k) & (actual == k))
        denominator = {"precision": tp + fp, "recall": tp + fn, "f1": 2 * tp + fp + fn}[score]
        numerator = 2 * tp if score == "f1" else tp
        values.append(numerator / denominator if denominator else 0.0)
    return float(np.mean(values))


@pytest.mark.parametrize("score", ["precision", "recall", "f1"])
def test_multiclass_scores_are_macro_averages(score: str) -> None:
    """For logits [n, C], the argmax against class ids (or one-hot) gives the unweighted mean
    over classes of the score of each class, over the whole set."""
    expected = _macro(score, LOGITS.argmax(1), IDS[:, 0])
    assert over_batches(metric(score), LOGITS, IDS) == pytest.approx(expected, rel=1e-14)
    one_hot = np.eye(4)[IDS[:, 0].astype(int)]
    assert over_batches(metric(score), LOGITS, one_hot) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("score", ["precision", "recall", "f1"])
def test_a_class_neither_predicted_nor_present_is_left_out(score: str) -> None:
    """The macro mean runs over the classes that occur in the targets or the predictions."""
    logits = LOGITS.copy()
    logits[:, 3] -= 100  # class 3 never predicted
    ids = np.minimum(IDS, 2)  # and never a target
    expected = _macro(score, logits.argmax(1), ids[:, 0])
    assert over_batches(metric(score), logits, ids) == pytest.approx(expected, rel=1e-14)


def test_binary_scores_on_a_tiny_set() -> None:
    """One logit: > 0 is positive. TP 2, FP 1, FN 1 give precision 2/3, recall 2/3, f1 2/3;
    with no positive predictions precision counts 0 (zero division) and so does f1."""
    z = np.array([[1.0], [2.0], [0.5], [-1.0], [-2.0]])
    y = np.array([[1.0], [1.0], [0.0], [1.0], [0.0]])
    assert metric("precision").compute(z, y) == pytest.approx(2 / 3)
    assert metric("recall").compute(z, y) == pytest.approx(2 / 3)
    assert metric("f1").compute(z, y) == pytest.approx(2 / 3)
    y2 = np.array([[1.0], [0.0], [0.0], [0.0], [0.0]])
    assert metric("precision").compute(z, y2) == pytest.approx(1 / 3)
    assert metric("recall").compute(z, y2) == 1.0
    assert metric("f1").compute(z, y2) == pytest.approx(0.5)
    negative = -np.abs(z) - 1
    for name in ("precision", "recall", "f1"):
        assert metric(name).compute(negative, y) == 0.0


def _auc_by_pairs(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a positive > score of a negative) + ½·P(tie), over every pair."""
    pos, neg = scores[positive], scores[~positive]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def test_auc_counts_pairs_with_ties_as_halves() -> None:
    """auc equals the pairwise definition on a set with many ties, over batches."""
    expected = _auc_by_pairs(SCORES[:, 0], FLAGS[:, 0] > 0.5)
    assert over_batches(metric("auc"), SCORES, FLAGS) == pytest.approx(expected, rel=1e-14)


def test_auc_on_a_tiny_set() -> None:
    """Perfect ranking 1, reversed 0, all tied ½, one class only NaN."""
    y = np.array([[0.0], [0.0], [1.0], [1.0]])
    auc = metric("auc")
    assert auc.compute(np.array([[0.1], [0.2], [0.3], [0.4]]), y) == 1.0
    assert auc.compute(np.array([[0.4], [0.3], [0.2], [0.1]]), y) == 0.0
    assert auc.compute(np.zeros((4, 1)), y) == 0.5
    assert auc.compute(np.array([[0.1], [0.9], [0.3], [0.2]]), y) == 0.5
    assert np.isnan(auc.compute(np.zeros((2, 1)), np.ones((2, 1))))


def test_auc_refuses_several_logits() -> None:
    """auc is binary: predictions with more than one output are an error saying so."""
    with pytest.raises(ValueError, match="one logit"):
        metric("auc").update(np.zeros((2, 3)), np.zeros((2, 1)))


@pytest.mark.parametrize(
    ("name", "prediction", "target"),
    [
        ("rmse", *REGRESSION),
        ("r2", *REGRESSION),
        ("precision", LOGITS, IDS),
        ("recall", LOGITS, IDS),
        ("f1", LOGITS, IDS),
        ("auc", SCORES, FLAGS),
    ],
)
def test_accumulating_differs_from_averaging_batches(
    name: str, prediction: np.ndarray, target: np.ndarray
) -> None:
    """None of these is a mean over samples: averaging per-batch values gives another (wrong)
    number, so the metric must accumulate over the epoch."""
    whole = metric(name).compute(prediction, target)
    assert over_batches(metric(name), prediction, target) == pytest.approx(whole, rel=1e-12)
    assert abs(batch_average(metric(name), prediction, target) - whole) > 1e-3


def test_reset_forgets_the_previous_epoch() -> None:
    """After reset, result covers only the batches updated since."""
    m = metric("rmse")
    m.update(np.array([[10.0]]), np.array([[0.0]]))
    m.reset()
    m.update(np.array([[1.0]]), np.array([[0.0]]))
    assert m.result() == 1.0
