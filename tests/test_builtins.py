"""The built-in plugins against closed forms: optimizers' update rules, stable losses, metrics,
initialisers and the synthetic data sets' formulas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import built_in

import graphnet


def plugin(kind: str, name: str, **options: Any) -> Any:
    return built_in(kind, name)(options)


def _run_optimizer(
    optimizer: Any, steps: int, seed: int = 0
) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]]]:
    rng = np.random.default_rng(seed)
    params = {"n/W": rng.standard_normal((3, 2)), "n/b": rng.standard_normal(2)}
    grads = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(steps)]
    start = {k: v.copy() for k, v in params.items()}
    state = optimizer.init_state(params)
    for g in grads:
        optimizer.step(params, g, state)
    return start, grads, params  # type: ignore[return-value]


def test_adam_matches_the_published_rule() -> None:
    """Adam (Kingma & Ba, Algorithm 1, with weight decay added to g) to 1e-7 over 6 steps."""
    lr, b1, b2, eps, wd = 0.01, 0.8, 0.99, 1e-6, 0.1
    start, grads, params = _run_optimizer(
        plugin("optimizer", "adam", lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd), 6
    )
    for key, p in start.items():
        p = p.copy()
        m = np.zeros_like(p)
        v = np.zeros_like(p)
        for t, g in enumerate(grads, start=1):
            g = g[key] + wd * p
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g**2
            m_hat = m / (1 - b1**t)
            v_hat = v / (1 - b2**t)
            p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        np.testing.assert_allclose(params[key], p, rtol=0, atol=1e-7)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_matches_the_closed_form(nesterov: bool) -> None:
    """SGD with momentum, Nesterov and weight decay follows torch.optim.SGD's rule (dampening 0)."""
    lr, mu, wd = 0.1, 0.9, 0.01
    start, grads, params = _run_optimizer(
        plugin("optimizer", "sgd", lr=lr, momentum=mu, nesterov=nesterov, weight_decay=wd), 5
    )
    for key, p in start.items():
        p = p.copy()
        buf = None
        for g in grads:
            d = g[key] + wd * p
            buf = d if buf is None else mu * buf + d
            p = p - lr * (d + mu * buf if nesterov else buf)
        np.testing.assert_allclose(params[key], p, rtol=1e-12, atol=1e-12)


def test_plain_sgd_is_p_minus_lr_g() -> None:
    """Plain SGD keeps no state and steps by -lr·g."""
    start, grads, params = _run_optimizer(plugin("optimizer", "sgd", lr=0.3), 1)
    for key in start:
        np.testing.assert_allclose(params[key], start[key] - 0.3 * grads[0][key], rtol=1e-15)
    assert plugin("optimizer", "sgd", lr=0.3).init_state(params) == {}


def test_cross_entropy_is_stable_for_huge_logits() -> None:
    """Logits of ±1000 give the exact loss and a finite gradient (softmax inside, log-sum-exp)."""
    loss = plugin("loss", "cross_entropy")
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0]])
    value, cache = loss.forward([logits, np.array([[0.0], [0.0]])])
    assert value == pytest.approx((0.0 + 2000.0) / 2)
    (d_logits, d_labels) = loss.backward(cache)
    assert d_labels is None and np.isfinite(d_logits).all()
    np.testing.assert_allclose(d_logits, [[0.0, 0.0, 0.0], [-0.5, 0.5, 0.0]], atol=1e-12)


def test_cross_entropy_one_hot_equals_class_ids() -> None:
    """One-hot labels and class ids give the same loss and logits gradient."""
    loss = plugin("loss", "cross_entropy")
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((6, 4))
    ids = np.array([[0], [3], [2], [2], [1], [0]], dtype=float)
    a, cache_a = loss.forward([logits, ids])
    b, cache_b = loss.forward([logits, np.eye(4)[ids[:, 0].astype(int)]])
    expected = -np.mean(
        np.log(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))[
            np.arange(6), ids[:, 0].astype(int)
        ]
    )
    assert a == pytest.approx(expected, rel=1e-12) and b == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(loss.backward(cache_a)[0], loss.backward(cache_b)[0], atol=1e-15)


def test_cross_entropy_rejects_labels_out_of_range() -> None:
    """A class id outside 0..classes-1 (or not a whole number) is a DataError naming the label."""
    loss = plugin("loss", "cross_entropy")
    with pytest.raises(graphnet.DataError, match=r"label 3\.0 of sample 1 .* 0\.\.2"):
        loss.forward([np.zeros((2, 3)), np.array([[0.0], [3.0]])])
    with pytest.raises(graphnet.DataError, match="not a class id"):
        loss.forward([np.zeros((2, 3)), np.array([[0.5], [1.0]])])


def test_bce_is_stable_and_matches_the_closed_form() -> None:
    """bce of logits: mean of -t·log σ(z) - (1-t)·log(1-σ(z)), exact even at z = ±1000."""
    loss = plugin("loss", "bce")
    z = np.array([[0.3, -2.0], [1000.0, -1000.0]])
    t = np.array([[1.0, 0.0], [0.0, 0.0]])
    value, cache = loss.forward([z, t])
    s = 1 / (1 + np.exp(-z[0]))
    first_row = -(t[0] * np.log(s) + (1 - t[0]) * np.log(1 - s))
    assert value == pytest.approx((first_row.sum() + 1000.0 + 0.0) / 4, rel=1e-12)
    d_z, _ = loss.backward(cache)
    assert np.isfinite(d_z).all()


def test_accuracy_and_mae() -> None:
    """accuracy: argmax against class ids or one-hot, `> 0` for one logit; mae: mean |p - t|."""
    accuracy = plugin("metric", "accuracy")
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 5.0], [1.0, 3.0, 0.0], [0.0, 1.0, 0.0]])
    assert accuracy.compute(logits, np.array([[0.0], [2.0], [0.0], [1.0]])) == 0.75
    assert accuracy.compute(logits, np.eye(3)[[0, 2, 0, 1]]) == 0.75
    assert accuracy.compute(
        np.array([[2.0], [-1.0], [0.5]]), np.array([[1.0], [0.0], [0.0]])
    ) == pytest.approx(2 / 3)
    mae = plugin("metric", "mae")
    assert mae.compute(np.array([[1.0], [2.0]]), np.array([[0.5], [4.0]])) == pytest.approx(1.25)


@pytest.mark.parametrize(
    ("init", "check"),
    [
        (
            "glorot_uniform",
            lambda W, b: (
                np.abs(W).max() <= np.sqrt(6 / 90)
                and np.abs(W).max() > 0.9 * np.sqrt(6 / 90)
                and not b.any()
            ),
        ),
        (
            "he_uniform",
            lambda W, b: (
                np.abs(W).max() <= np.sqrt(6 / 50)
                and np.abs(W).max() > 0.9 * np.sqrt(6 / 50)
                and not b.any()
            ),
        ),
        (
            "uniform",
            lambda W, b: (
                W.min() >= 0 and W.max() < 1 and abs(W.mean() - 0.5) < 0.05 and b.min() >= 0
            ),
        ),
        ("normal", lambda W, b: abs(W.mean()) < 0.05 and abs(W.std() - 1) < 0.05),
        ("zeros", lambda W, b: not W.any() and not b.any()),
    ],
)
def test_dense_initialisers(init: str, check: Any) -> None:
    """Each dense `init` draws W (and b) from the distribution the docs give."""
    dense = plugin("layer", "dense", units=40, init=init)
    params = dense.init_params([(50,)], np.random.default_rng(0))
    assert params["W"].shape == (50, 40) and params["b"].shape == (40,)
    assert check(params["W"], params["b"])


def test_dropout_masks() -> None:
    """dropout: identity outside training; in training zeroes about `rate` and scales the rest."""
    layer = plugin("layer", "dropout", rate=0.25)
    x = np.ones((200, 50))
    out, _ = layer.forward({}, [x], False)
    assert np.array_equal(out, x)
    layer.rng = np.random.default_rng(3)
    out, _ = layer.forward({}, [x], True)
    assert abs((out == 0).mean() - 0.25) < 0.02
    np.testing.assert_allclose(out[out != 0], 1 / 0.75)
    layer.rng = np.random.default_rng(3)
    again, _ = layer.forward({}, [x], True)
    assert np.array_equal(out, again)


def _synthetic(function: str, **options: Any) -> dict[str, np.ndarray]:
    source = plugin("data source", "synthetic", function=function, **options)
    return source.load(Path("."), np.random.default_rng(0))


def test_synthetic_product_is_the_notebooks_data() -> None:
    """product: x ~ U[0,1)², y = 10·x0·x1 + U(-0.15, 0.15)."""
    data = _synthetic("product", samples=5000)
    x, y = data["x"], data["y"]
    assert x.shape == (5000, 2) and y.shape == (5000, 1)
    residual = y[:, 0] - 10 * x[:, 0] * x[:, 1]
    assert np.abs(residual).max() <= 0.15 and np.abs(residual).max() > 0.14


def test_synthetic_xor_spirals_blobs_follow_their_formulas() -> None:
    """xor labels x0·x1 > 0; spirals lie on angle = 4r + 2πk/K; blobs sit around their centres."""
    xor = _synthetic("xor", samples=1000, noise=0.0)
    assert np.array_equal(xor["y"][:, 0], (xor["x"][:, 0] * xor["x"][:, 1] > 0).astype(float))
    spirals = _synthetic("spirals", samples=1000, noise=0.0, classes=4)
    x, k = spirals["x"], spirals["y"][:, 0]
    r = np.hypot(x[:, 0], x[:, 1])
    angle = np.arctan2(x[:, 0], x[:, 1])
    expected = 4 * r + 2 * np.pi * k / 4
    np.testing.assert_allclose(np.cos(angle - expected)[r > 1e-6], 1.0, atol=1e-9)
    assert set(np.unique(k)) == {0.0, 1.0, 2.0, 3.0}
    blobs = _synthetic("blobs", samples=1000, noise=0.0, classes=3)
    centres = 2 * np.stack(
        [np.cos(2 * np.pi * np.arange(3) / 3), np.sin(2 * np.pi * np.arange(3) / 3)], axis=1
    )
    nearest = np.argmin(((blobs["x"][:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    assert (nearest == blobs["y"][:, 0]).mean() > 0.99
