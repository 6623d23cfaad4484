"""train.clip_grad_norm: the global L2 norm of all gradients is scaled to at most the limit
between backward and the optimizer step, as torch.nn.utils.clip_grad_norm_ (eps 1e-6)."""

from __future__ import annotations

import numpy as np
import pytest
from training_specs import arrays, linear_data, run, write_spec

LR = 0.1


def numpy_sgd(data: np.ndarray, epochs: int, limit: float | None) -> tuple[np.ndarray, float]:
    """Full-batch SGD on y ≈ x·W + b from zeros with MSE, clipped by hand; W, b and the
    largest gradient norm seen before clipping."""
    x, y = data[:, :-1], data[:, -1:]
    W, b = np.zeros((x.shape[1], 1)), np.zeros(1)
    largest = 0.0
    for _ in range(epochs):
        err = x @ W + b - y
        dW, db = 2 * x.T @ err / len(x), 2 * err.sum(axis=0) / len(x)
        norm = np.sqrt(np.sum(dW**2) + np.sum(db**2))
        largest = max(largest, float(norm))
        if limit is not None and limit / (norm + 1e-6) < 1:
            dW, db = dW * limit / (norm + 1e-6), db * limit / (norm + 1e-6)
        W, b = W - LR * dW, b - LR * db
    return np.concatenate([W.ravel(), b]), largest


def trained(tmp_path, epochs: int, limit: float | None) -> np.ndarray:
    options = {} if limit is None else {"clip_grad_norm": limit}
    spec = write_spec(tmp_path, epochs=epochs, optimizer={"type": "sgd", "lr": LR}, **options)
    out = tmp_path / f"run-{limit}"
    assert run(spec, out).exit_code == 0
    weights = arrays(out / "weights.npz")
    return np.concatenate([weights["out/W"].ravel(), weights["out/b"]])


@pytest.mark.parametrize("limit", [0.5, 3.0])
def test_clipping_matches_the_closed_form(tmp_path, limit):
    """The weights after 20 clipped steps are those of SGD whose gradient is scaled by
    limit / (norm + 1e-6) whenever that is below 1."""
    data = linear_data(tmp_path)
    expected, largest = numpy_sgd(data, 20, limit)
    assert largest > limit  # the clipping did act
    np.testing.assert_allclose(trained(tmp_path, 20, limit), expected, rtol=1e-12, atol=1e-14)
    assert not np.allclose(expected, numpy_sgd(data, 20, None)[0])


def test_a_limit_above_every_norm_changes_nothing(tmp_path):
    """A limit the gradients never reach gives the very bits of a run without clipping."""
    data = linear_data(tmp_path)
    _, largest = numpy_sgd(data, 10, None)
    np.testing.assert_array_equal(trained(tmp_path, 10, 2 * largest), trained(tmp_path, 10, None))


def test_clipping_matches_torch(tmp_path):
    """torch.nn.utils.clip_grad_norm_ on the same network, data and SGD gives the same weights."""
    torch = pytest.importorskip("torch")
    data = linear_data(tmp_path)
    x, y = torch.tensor(data[:, :-1]), torch.tensor(data[:, -1:])
    model = torch.nn.Linear(x.shape[1], 1, dtype=torch.float64)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    for _ in range(20):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
    expected = np.concatenate([model.weight.detach().numpy().ravel(), model.bias.detach().numpy()])
    np.testing.assert_allclose(trained(tmp_path, 20, 0.5), expected, rtol=1e-12, atol=1e-14)


def test_clip_grad_norm_must_be_positive(tmp_path):
    """clip_grad_norm 0 or below is refused at its line (exit 2)."""
    linear_data(tmp_path)
    spec = write_spec(tmp_path, clip_grad_norm=0)
    result = run(spec, tmp_path / "run")
    assert result.exit_code == 2
    assert "train.clip_grad_norm: input should be greater than 0" in result.stderr
