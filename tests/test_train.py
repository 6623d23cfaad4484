"""Training: parity with the notebook, mini-batches, shuffling, validation, dtype, the run
folder, checkpoints and resume, divergence, and the csv and npz data sources.

The references are the notebook's hand-written ``backward_pass`` and small numpy SGD loops
written out here, never graphnet's own code.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import assert_same_bits, write_spec

import graphnet

SEED_NODES = [
    {"name": "hidden", "type": "dense", "inputs": ["x"], "units": 5, "init": "uniform"},
    {"name": "act", "type": "relu", "inputs": ["hidden"]},
    {"name": "out", "type": "dense", "inputs": ["act"], "units": 1, "init": "uniform"},
]


def seed_spec(**train: Any) -> dict[str, Any]:
    """The notebook's network reading ``data.npz`` (x: [2], y: [1])."""
    return {
        "data": {"source": "npz", "path": "data.npz"},
        "inputs": {"x": {"shape": [2]}, "y": {"shape": [1]}},
        "nodes": SEED_NODES,
        "loss": {"type": "mse", "inputs": ["out", "y"]},
        "train": {
            "epochs": 1,
            "batch_size": None,
            "shuffle": False,
            "optimizer": {"type": "sgd", "lr": 0.05},
            **train,
        },
    }


def product_data(directory: Path, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The notebook's data, y = 10·x0·x1 + U(-0.15, 0.15), saved as ``data.npz``."""
    rng = np.random.default_rng(seed)
    features = rng.random((n, 2))
    targets = 10 * features[:, 0] * features[:, 1] + 0.3 * rng.random(n) - 0.15
    np.savez(directory / "data.npz", x=features, y=targets.reshape(n, 1))
    return features, targets


def notebook_weights(seed: int = 1) -> dict[str, np.ndarray]:
    """w1, b1, w2, b2 drawn as the notebook draws them (U[0,1)), keyed as in weights.npz."""
    rng = np.random.default_rng(seed)
    return {
        "hidden/W": rng.random((2, 5)),
        "hidden/b": rng.random(5),
        "out/W": rng.random((5, 1)),
        "out/b": rng.random(1),
    }


def read_weights(run_dir: Path) -> dict[str, np.ndarray]:
    with np.load(run_dir / "weights.npz", allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def read_metrics(run_dir: Path) -> tuple[list[str], list[list[str]]]:
    with (run_dir / "metrics.csv").open(newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    return rows[0], rows[1:]


# -- the notebook's hand-written passes, copied ----------------------------------------------


def relu(z):
    return np.maximum(0, z)


def drelu(z):
    return 1.0 * (z > 0)


def backward_pass(features, targets, weights, biases, lr=0.0001):
    """The notebook's ``backward_pass``, with its printed loss returned instead.

    The notebook reshapes by the global ``output``, which has ``outp``'s shape.
    """
    # Forward pass
    hidden = relu(np.dot(features, weights[0]) + biases[0])
    outp = np.dot(hidden, weights[1]) + biases[1]

    # Compute loss
    loss = np.mean((np.squeeze(outp) - targets) ** 2)

    # Compute Ds
    delta2 = outp - targets.reshape(outp.shape)
    dw2 = np.dot(hidden.T, delta2)
    db2 = np.sum(delta2, axis=0)
    delta1 = np.dot(delta2, weights[1].T) * drelu(hidden)
    dw1 = np.dot(features.T, delta1)
    db1 = np.sum(delta1, axis=0)

    # Update parameters
    weights[0] -= lr * dw1
    biases[0] -= lr * db1
    weights[1] -= lr * dw2
    biases[1] -= lr * db2
    return loss


def reference_sgd(x, y, params, lr, batch_size, epochs):
    """Mini-batch SGD on mean((out - y)²) for dense-relu-dense, by hand, samples in turn.

    Returns the final parameters and each epoch's loss, the batch-size-weighted mean of its
    batch losses.
    """
    p = {k: v.copy() for k, v in params.items()}
    n, epoch_losses = len(x), []
    for _ in range(epochs):
        total = 0.0
        for start in range(0, n, batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            z = xb @ p["hidden/W"] + p["hidden/b"]
            h = relu(z)
            err = h @ p["out/W"] + p["out/b"] - yb
            total += np.mean(err**2) * len(xb)
            d_out = 2 * err / err.size
            d_z = d_out @ p["out/W"].T * (z > 0)
            grads = {
                "out/W": h.T @ d_out,
                "out/b": d_out.sum(axis=0),
                "hidden/W": xb.T @ d_z,
                "hidden/b": d_z.sum(axis=0),
            }
            for key in p:
                p[key] -= lr * grads[key]
        epoch_losses.append(total / n)
    return p, epoch_losses


# -- parity and the epoch loss ---------------------------------------------------------------


def test_reproduces_the_notebook(tmp_path):
    """The notebook's network trained by graphnet (MSE, SGD lr 0.05, full batch) takes exactly
    the notebook's steps: after 10 epochs the weights match its backward_pass (lr 1e-4) to
    1e-9, and each epoch's loss is the loss the notebook prints before its step.

    The algebra: d mean(err²)/dθ = (2/n)·Σ err·∂err/∂θ, while the notebook steps along
    Σ err·∂err/∂θ (the gradient of ½·Σ err²); so lr·2/n = 0.05·2/1000 = 1e-4, the notebook's lr.
    """
    n, epochs, lr = 1000, 10, 0.05
    features, targets = product_data(tmp_path, n)
    start = notebook_weights()
    assert lr * 2 / n == pytest.approx(1e-4, rel=1e-15)

    weights = [start["hidden/W"].copy(), start["out/W"].copy()]
    biases = [start["hidden/b"].copy(), start["out/b"].copy()]
    printed = [backward_pass(features, targets, weights, biases, lr=0.0001) for _ in range(epochs)]

    spec = graphnet.load_spec(write_spec(tmp_path, seed_spec(epochs=epochs)))
    history = graphnet.train(spec, tmp_path / "run", weights=start)

    got = read_weights(tmp_path / "run")
    expected = {
        "hidden/W": weights[0],
        "hidden/b": biases[0],
        "out/W": weights[1],
        "out/b": biases[1],
    }
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=0, atol=1e-9, err_msg=key)
        assert not np.array_equal(got[key], start[key]), f"{key} never moved"
    header, rows = read_metrics(tmp_path / "run")
    losses = [float(row[header.index("loss")]) for row in rows]
    assert [int(row[0]) for row in rows] == list(range(1, epochs + 1))
    np.testing.assert_allclose(losses, printed, rtol=1e-10)
    assert [record["loss"] for record in history] == losses
    assert printed[-1] < printed[0]


@pytest.mark.parametrize("weights_file", [False, True], ids=["weights-dict", "weights-npz"])
def test_mini_batches_and_epoch_loss(tmp_path, weights_file):
    """With a batch size that does not divide the data (10 samples in batches of 4, 4, 2) and no
    shuffling, each batch takes one SGD step, and the epoch's loss is the mean of the batch
    losses weighted by batch size, as a hand-written numpy loop computes them. Starting
    weights come as a dict or an NPZ file (`--weights`)."""
    x, y = product_data(tmp_path, 10, seed=2)
    start = notebook_weights(3)
    given: Any = start
    if weights_file:
        given = tmp_path / "start.npz"
        np.savez(given, **start)
    spec = graphnet.load_spec(
        write_spec(
            tmp_path, seed_spec(epochs=3, batch_size=4, optimizer={"type": "sgd", "lr": 0.1})
        )
    )
    history = graphnet.train(spec, tmp_path / "run", weights=given)
    expected, losses = reference_sgd(x, y.reshape(-1, 1), start, 0.1, 4, 3)
    got = read_weights(tmp_path / "run")
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-12, atol=1e-14, err_msg=key)
    np.testing.assert_allclose([r["loss"] for r in history], losses, rtol=1e-12)
    # an unweighted mean of the three batch losses would differ
    full, _ = reference_sgd(x, y.reshape(-1, 1), start, 0.1, 10, 1)
    assert not np.allclose(got["out/W"], full["out/W"])


# -- shuffling and validation ----------------------------------------------------------------


def _shuffled_run(tmp_path: Path, name: str, seed: int, shuffle: bool = True) -> dict:
    spec = seed_spec(epochs=3, batch_size=3, shuffle=shuffle)
    path = write_spec(tmp_path, {"seed": seed, **spec}, f"{name}.yaml")
    graphnet.train(graphnet.load_spec(path), tmp_path / name, weights=notebook_weights())
    return read_weights(tmp_path / name)


@pytest.mark.parametrize("shuffle", [True, False])
def test_an_epoch_sees_every_sample_once(tmp_path, shuffle):
    """An epoch, shuffled or not, steps on every training sample exactly once, in batches of
    batch_size and one smaller last batch; shuffling changes which samples share a batch.

    Each sample is a one-hot x that only its own row of W sees, so from W = 0 one epoch of SGD
    on MSE leaves row i at 2·lr·y_i / (size of i's batch), and the epoch's loss is mean(y²).
    """
    n, batch_size, lr = 11, 3, 0.1
    y = np.linspace(1.0, 2.0, n).reshape(n, 1)
    np.savez(tmp_path / "data.npz", x=np.eye(n), y=y)
    spec = {
        "seed": 1,
        "data": {"source": "npz", "path": "data.npz"},
        "inputs": {"x": {"shape": [n]}, "y": {"shape": [1]}},
        "nodes": [{"name": "out", "type": "dense", "inputs": ["x"], "units": 1, "bias": False}],
        "loss": {"type": "mse", "inputs": ["out", "y"]},
        "train": {
            "epochs": 1,
            "batch_size": batch_size,
            "shuffle": shuffle,
            "optimizer": {"type": "sgd", "lr": lr},
        },
    }
    path = write_spec(tmp_path, spec)
    history = graphnet.train(
        graphnet.load_spec(path), tmp_path / "run", weights={"out/W": np.zeros((n, 1))}
    )
    W = read_weights(tmp_path / "run")["out/W"]
    batch_of = np.round(2 * lr * y / W).astype(int)[:, 0]
    np.testing.assert_allclose(W, 2 * lr * y / batch_of[:, None], rtol=1e-12)
    assert sorted(batch_of) == [2, 2] + [3] * 9
    in_last_batch = sorted(np.flatnonzero(batch_of == 2))
    assert (in_last_batch == [9, 10]) is not shuffle
    assert history[0]["loss"] == pytest.approx(np.mean(y**2), rel=1e-12)


def test_shuffling_is_seeded(tmp_path):
    """Shuffled mini-batches depend on the seed alone: the same seed gives bit-identical
    weights.npz, another seed other weights; without shuffling the seed changes nothing."""
    product_data(tmp_path, 11)
    first = _shuffled_run(tmp_path, "a", seed=4)
    assert_same_bits(first, _shuffled_run(tmp_path, "b", seed=4))
    other = _shuffled_run(tmp_path, "c", seed=5)
    assert not np.array_equal(first["hidden/W"], other["hidden/W"])
    assert_same_bits(
        _shuffled_run(tmp_path, "d", seed=4, shuffle=False),
        _shuffled_run(tmp_path, "e", seed=5, shuffle=False),
    )


def test_validation_split_holds_out_disjoint_samples(tmp_path):
    """data.validation holds out that fraction of the samples: they are never trained on, and
    val_loss (a column of metrics.csv) is the loss on exactly them.

    Each sample is a one-hot x that only its own row of W sees, so rows of W that stay zero
    are the held-out samples, and with those rows zero the validation loss is mean(y²) over
    them.
    """
    n = 20
    y = np.arange(1, n + 1, dtype=float).reshape(n, 1)
    np.savez(tmp_path / "data.npz", x=np.eye(n), y=y)
    spec = {
        "seed": 3,
        "data": {"source": "npz", "path": "data.npz", "validation": 0.2},
        "inputs": {"x": {"shape": [n]}, "y": {"shape": [1]}},
        "nodes": [{"name": "out", "type": "dense", "inputs": ["x"], "units": 1, "bias": False}],
        "loss": {"type": "mse", "inputs": ["out", "y"]},
        "train": {"epochs": 2, "batch_size": 5, "optimizer": {"type": "sgd", "lr": 0.1}},
    }
    path = write_spec(tmp_path, spec)
    history = graphnet.train(
        graphnet.load_spec(path), tmp_path / "run", weights={"out/W": np.zeros((n, 1))}
    )
    W = read_weights(tmp_path / "run")["out/W"][:, 0]
    held_out = np.flatnonzero(W == 0)
    trained = np.flatnonzero(W != 0)
    assert len(held_out) == 4 and len(trained) == 16
    header, rows = read_metrics(tmp_path / "run")
    assert header == ["epoch", "loss", "val_loss", "seconds"]
    for record, row in zip(history, rows, strict=True):
        assert record["val_loss"] == float(row[2])
        assert record["val_loss"] == pytest.approx(np.mean(y[held_out] ** 2), rel=1e-12)
    # epoch 1 starts from W = 0 on the trained samples alone, in batches of 5
    assert history[0]["loss"] > 0

    graphnet.train(
        graphnet.load_spec(path), tmp_path / "again", weights={"out/W": np.zeros((n, 1))}
    )
    np.testing.assert_array_equal(read_weights(tmp_path / "again")["out/W"][:, 0] == 0, W == 0)


# -- dtype -----------------------------------------------------------------------------------


def test_float32_stays_float32(tmp_path, monkeypatch):
    """A float32 spec trains in float32 throughout: every parameter, node output and gradient,
    the optimizer state, weights.npz and the checkpoint, even from float64 data and weights."""
    product_data(tmp_path, 12)
    spec = seed_spec(epochs=2, batch_size=5, optimizer={"type": "sgd", "lr": 0.05, "momentum": 0.9})
    path = write_spec(tmp_path, {"dtype": "float32", **spec})
    seen = {"steps": 0}
    train_step = graphnet.Network.train_step

    def checked_train_step(self, values):
        result = train_step(self, values)
        seen["steps"] += 1
        arrays = [v for v in values if v is not None]
        assert len(arrays) == len(self.slots)  # inputs and every node output
        for array in [*arrays, *self.params.values(), *self.grads.values()]:
            assert array.dtype == np.float32
        return result

    monkeypatch.setattr(graphnet.Network, "train_step", checked_train_step)
    graphnet.train(graphnet.load_spec(path), tmp_path / "run", weights=notebook_weights())
    assert seen["steps"] == 2 * 3
    weights = read_weights(tmp_path / "run")
    assert weights and all(w.dtype == np.float32 for w in weights.values())
    with np.load(tmp_path / "run" / "checkpoint.npz", allow_pickle=False) as checkpoint:
        floats = {k: checkpoint[k] for k in checkpoint.files if checkpoint[k].dtype.kind == "f"}
    momentum = [a for k, a in floats.items() if k.startswith("state/")]
    n_params = sum(w.size for w in weights.values())
    assert sum(a.size for a in momentum) == n_params  # a momentum entry for every parameter
    assert len(floats) == len(weights) + len(momentum)  # parameters and momentum, nothing else
    assert all(a.dtype == np.float32 for a in floats.values())


# -- the run folder --------------------------------------------------------------------------


def test_run_folder_contents(tmp_path):
    """A run writes spec.yaml (the spec with every default filled in), weights.npz keyed
    `<node>/<param>` with W in×out, checkpoint.npz and metrics.csv with one row per epoch and
    floats written in full (repr) precision."""
    product_data(tmp_path, 8)
    spec = {
        "data": {"source": "npz", "path": "data.npz"},
        "inputs": {"x": {"shape": [2]}, "y": {"shape": [1]}},
        "nodes": [
            {"name": "hidden", "type": "Dense", "inputs": "x", "units": 3},
            {"name": "act", "type": "relu", "inputs": ["hidden"]},
            {"name": "out", "type": "dense", "inputs": ["act"], "units": 1},
        ],
        "loss": {"type": "mse", "inputs": ["out", "y"]},
        "train": {"epochs": 3, "metrics": ["mae"]},
    }
    path = write_spec(tmp_path, spec, "tiny.yaml")
    history = graphnet.train(graphnet.load_spec(path), tmp_path / "run")
    run = tmp_path / "run"
    assert {"spec.yaml", "weights.npz", "checkpoint.npz", "metrics.csv"} <= {
        p.name for p in run.iterdir()
    }

    saved = yaml.safe_load((run / "spec.yaml").read_text(encoding="utf-8"))
    assert saved["name"] == "tiny" and saved["seed"] == 0 and saved["dtype"] == "float64"
    assert saved["nodes"][0] == {
        "name": "hidden",
        "type": "dense",
        "inputs": ["x"],
        "units": 3,
        "bias": True,
        "init": "glorot_uniform",
    }
    assert saved["loss"] == [{"type": "mse", "inputs": ["out", "y"], "weight": 1.0}]
    assert saved["data"]["validation"] == 0.0
    train = saved["train"]
    assert train["epochs"] == 3 and train["batch_size"] is None and train["shuffle"] is True
    assert train["checkpoint_every"] == 30
    assert train["optimizer"] == {
        "type": "sgd",
        "lr": 0.01,
        "momentum": 0.0,
        "nesterov": False,
        "weight_decay": 0.0,
    }
    assert graphnet.load_spec(run / "spec.yaml").to_dict() == graphnet.load_spec(path).to_dict() | {
        "name": "tiny"
    }

    weights = read_weights(run)
    assert {k: v.shape for k, v in weights.items()} == {
        "hidden/W": (2, 3),
        "hidden/b": (3,),
        "out/W": (3, 1),
        "out/b": (1,),
    }
    network = graphnet.load_run(run)
    assert_same_bits(network.params, weights)

    with np.load(run / "checkpoint.npz", allow_pickle=False) as archive:
        saved_arrays = [archive[k] for k in archive.files]
    for key, value in weights.items():
        assert any(np.array_equal(value, a) for a in saved_arrays), f"{key} not in checkpoint"

    header, rows = read_metrics(run)
    assert header == ["epoch", "loss", "mae", "seconds"]
    assert [row[0] for row in rows] == ["1", "2", "3"]
    for record, row in zip(history, rows, strict=True):
        for column, text in zip(header[1:], row[1:], strict=True):
            assert text == repr(float(text)) == repr(record[column])


class _Watcher:
    """A reporter that reads the run folder as each epoch ends (before it is saved)."""

    def __init__(self) -> None:
        self.run_dir: Path | None = None
        self.seen: list[tuple[int, int | None, int]] = []

    def start(self, run_dir: Path, info: Any) -> None:
        self.run_dir = run_dir

    def epoch(self, record: Any) -> None:
        assert self.run_dir is not None
        checkpoint = self.run_dir / "checkpoint.npz"
        saved = None
        if checkpoint.exists():
            with np.load(checkpoint, allow_pickle=False) as archive:
                saved = int(archive["epoch"])
        rows = len(read_metrics(self.run_dir)[1]) if (self.run_dir / "metrics.csv").exists() else 0
        self.seen.append((record["epoch"], saved, rows))


@pytest.mark.parametrize(
    ("every", "expected"),
    [
        (0, [(1, None, 0), (2, 1, 1), (3, 2, 2), (4, 3, 3)]),
        (1e9, [(1, None, 0), (2, None, 0), (3, None, 0), (4, None, 0)]),
    ],
    ids=["every-epoch", "only-at-the-end"],
)
def test_checkpoint_every(tmp_path, every, expected):
    """checkpoint_every: 0 saves the checkpoint and metrics after every epoch; a long interval
    saves them only at the end of the run."""
    product_data(tmp_path, 6)
    path = write_spec(tmp_path, seed_spec(epochs=4, checkpoint_every=every))
    watcher = _Watcher()
    graphnet.train(graphnet.load_spec(path), tmp_path / "run", reporter=watcher)
    assert watcher.seen == expected
    with np.load(tmp_path / "run" / "checkpoint.npz", allow_pickle=False) as archive:
        assert int(archive["epoch"]) == 4
    assert len(read_metrics(tmp_path / "run")[1]) == 4


# -- resume ----------------------------------------------------------------------------------


SGD_MOMENTUM = {"type": "sgd", "lr": 0.05, "momentum": 0.5}


def _resume_spec(tmp_path: Path, every: float = 0, optimizer: dict = SGD_MOMENTUM) -> Path:
    product_data(tmp_path, 17)
    spec = seed_spec(
        epochs=6, batch_size=5, shuffle=True, checkpoint_every=every, optimizer=optimizer
    )
    return write_spec(tmp_path, {"seed": 9, **spec})


@pytest.mark.parametrize("every", [0, 30], ids=["every-epoch", "every-30s"])
@pytest.mark.parametrize(
    "optimizer", [SGD_MOMENTUM, {"type": "adam", "lr": 0.01}], ids=["momentum", "adam"]
)
def test_resume_gives_the_same_bits(tmp_path, every, optimizer):
    """A run stopped after 3 of 6 epochs and continued with resume ends with the bits of a run
    that never stopped (shuffled mini-batches, optimizer state), and metrics.csv lists each
    epoch once with the same losses."""
    path = _resume_spec(tmp_path, every, optimizer)
    whole = graphnet.train(graphnet.load_spec(path), tmp_path / "whole")
    graphnet.train(graphnet.load_spec(path, {"train.epochs": 3}), tmp_path / "split")
    resumed = graphnet.train(graphnet.load_spec(path), tmp_path / "split", resume=True)

    assert_same_bits(read_weights(tmp_path / "whole"), read_weights(tmp_path / "split"))
    header, rows = read_metrics(tmp_path / "split")
    assert [row[0] for row in rows] == ["1", "2", "3", "4", "5", "6"]
    whole_rows = read_metrics(tmp_path / "whole")[1]
    loss = header.index("loss")
    assert [row[loss] for row in rows] == [row[loss] for row in whole_rows]
    assert [r["loss"] for r in resumed] == [r["loss"] for r in whole]


def test_resume_refuses_a_changed_spec(tmp_path):
    """Resuming with a changed learning rate is refused naming train.optimizer.lr, and the run
    is left untouched."""
    path = _resume_spec(tmp_path)
    graphnet.train(graphnet.load_spec(path, {"train.epochs": 2}), tmp_path / "run")
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    changed = graphnet.load_spec(path, {"train.optimizer.lr": 0.1})
    with pytest.raises(graphnet.SpecError, match=r"train\.optimizer\.lr"):
        graphnet.train(changed, tmp_path / "run", resume=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before


def test_out_dir_holding_a_run_is_refused(tmp_path):
    """Training into a folder that holds another run is a SpecError, and the old run is kept."""
    path = _resume_spec(tmp_path)
    graphnet.train(graphnet.load_spec(path, {"train.epochs": 1}), tmp_path / "run")
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    with pytest.raises(graphnet.SpecError, match="holds another run"):
        graphnet.train(graphnet.load_spec(path, {"train.epochs": 1}), tmp_path / "run")
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before


# -- divergence ------------------------------------------------------------------------------


def test_divergence_names_epoch_and_batch(tmp_path):
    """A learning rate far too large is a TrainingError naming the epoch and batch where the
    loss stopped being finite (found here by a numpy SGD loop); the run keeps the weights of
    its last finite epoch."""
    rng = np.random.default_rng(0)
    x = rng.random((12, 2))
    y = x @ np.array([[3.0], [-2.0]])
    np.savez(tmp_path / "data.npz", x=x, y=y)
    lr, batch_size = 30.0, 4  # diverges in epoch 27, batch 3
    W, b = np.full((2, 1), 0.5), np.zeros(1)

    # the reference: plain SGD on a linear model until the loss is not finite
    ref_W, ref_b, last_finite, where = W.copy(), b.copy(), None, None
    with np.errstate(all="ignore"):
        for epoch in range(1, 101):
            for batch, start in enumerate(range(0, 12, batch_size), start=1):
                xb, yb = x[start : start + batch_size], y[start : start + batch_size]
                err = xb @ ref_W + ref_b - yb
                if not np.isfinite(np.mean(err**2)):
                    where = (epoch, batch)
                    break
                d = 2 * err / err.size
                ref_W, ref_b = ref_W - lr * xb.T @ d, ref_b - lr * d.sum(axis=0)
            if where:
                break
            last_finite = {"out/W": ref_W.copy(), "out/b": ref_b.copy()}
    assert where is not None and where[0] > 1 and where[1] > 1 and last_finite is not None

    spec = {
        "data": {"source": "npz", "path": "data.npz"},
        "inputs": {"x": {"shape": [2]}, "y": {"shape": [1]}},
        "nodes": [{"name": "out", "type": "dense", "inputs": ["x"], "units": 1}],
        "loss": {"type": "mse", "inputs": ["out", "y"]},
        "train": {
            "epochs": 100,
            "batch_size": batch_size,
            "shuffle": False,
            "optimizer": {"type": "sgd", "lr": lr},
        },
    }
    path = write_spec(tmp_path, spec)
    with (
        np.errstate(all="ignore"),
        pytest.raises(graphnet.TrainingError) as raised,
    ):
        graphnet.train(graphnet.load_spec(path), tmp_path / "run", weights={"out/W": W, "out/b": b})
    found = re.search(r"epoch (\d+), batch (\d+)", str(raised.value))
    assert found, str(raised.value)
    assert (int(found[1]), int(found[2])) == where
    kept = read_weights(tmp_path / "run")
    for key, value in last_finite.items():
        np.testing.assert_allclose(kept[key], value, rtol=1e-9, err_msg=key)
    with np.load(tmp_path / "run" / "checkpoint.npz", allow_pickle=False) as checkpoint:
        assert int(checkpoint["epoch"]) == where[0] - 1
    assert [row[0] for row in read_metrics(tmp_path / "run")[1]] == [
        str(e) for e in range(1, where[0])
    ]


# -- data sources ----------------------------------------------------------------------------


def _linear_spec(source: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": source,
        "inputs": {"x": {"shape": [2]}, "y": {"shape": [1]}},
        "nodes": [{"name": "out", "type": "dense", "inputs": ["x"], "units": 1}],
        "loss": {"type": "mse", "inputs": ["out", "y"]},
        "train": {"epochs": 1, "shuffle": False},
    }


LINEAR_WEIGHTS = {"out/W": np.array([[2.0], [-1.0]]), "out/b": np.array([0.5])}


def _first_loss(x: np.ndarray, y: np.ndarray) -> float:
    """The first epoch's loss from LINEAR_WEIGHTS: what the data source must have loaded."""
    return float(np.mean((x @ LINEAR_WEIGHTS["out/W"] + LINEAR_WEIGHTS["out/b"] - y) ** 2))


def test_csv_source_reads_the_named_columns(tmp_path):
    """The csv source builds each input from the columns it names, in the order named,
    whatever their order in the file."""
    table = np.array([[1.0, 0.5, -2.0, 3.25], [4.0, -1.5, 0.0, 7.0], [0.25, 2.0, 9.5, -1.0]])
    lines = ["c,a,b,target"] + [",".join(repr(float(v)) for v in row) for row in table]
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    source = {"source": "csv", "path": "data.csv", "columns": {"x": ["b", "a"], "y": ["target"]}}
    path = write_spec(tmp_path, _linear_spec(source))
    history = graphnet.train(graphnet.load_spec(path), tmp_path / "run", weights=LINEAR_WEIGHTS)
    x, y = table[:, [2, 1]], table[:, [3]]
    assert history[0]["loss"] == pytest.approx(_first_loss(x, y), rel=1e-14)


def test_npz_source_reads_named_and_default_keys(tmp_path):
    """The npz source reads each input from the key `arrays` maps it to, or from the key of
    the input's own name."""
    rng = np.random.default_rng(8)
    x, y, decoy = rng.random((5, 2)), rng.random((5, 1)), rng.random((5, 1))
    np.savez(tmp_path / "data.npz", features=x, y=decoy, target=y, x=rng.random((5, 2)))
    source = {"source": "npz", "path": "data.npz", "arrays": {"x": "features", "y": "target"}}
    path = write_spec(tmp_path, _linear_spec(source))
    history = graphnet.train(graphnet.load_spec(path), tmp_path / "a", weights=LINEAR_WEIGHTS)
    assert history[0]["loss"] == pytest.approx(_first_loss(x, y), rel=1e-14)

    source = {"source": "npz", "path": "data.npz", "arrays": {"x": "features"}}
    path = write_spec(tmp_path, _linear_spec(source), "default.yaml")
    history = graphnet.train(graphnet.load_spec(path), tmp_path / "b", weights=LINEAR_WEIGHTS)
    assert history[0]["loss"] == pytest.approx(_first_loss(x, decoy), rel=1e-14)


def test_npz_source_names_a_missing_key(tmp_path):
    """An npz key that is not in the file is a DataError naming the key and the file."""
    np.savez(tmp_path / "data.npz", features=np.zeros((3, 2)), y=np.zeros((3, 1)))
    source = {"source": "npz", "path": "data.npz", "arrays": {"x": "feature"}}
    path = write_spec(tmp_path, _linear_spec(source))
    with pytest.raises(graphnet.DataError, match="'feature'") as raised:
        graphnet.train(graphnet.load_spec(path), tmp_path / "run")
    assert "data.npz" in str(raised.value)
    assert not (tmp_path / "run").exists()


def test_csv_source_names_a_bad_column(tmp_path):
    """A column missing from the CSV header is a DataError naming the file and the column, with
    the closest column name as a suggestion."""
    (tmp_path / "data.csv").write_text("x0,x1,target\n1,2,3\n", encoding="utf-8")
    source = {"source": "csv", "path": "data.csv", "columns": {"x": ["x0", "x1"], "y": ["targt"]}}
    path = write_spec(tmp_path, _linear_spec(source))
    with pytest.raises(graphnet.DataError) as raised:
        graphnet.train(graphnet.load_spec(path), tmp_path / "run")
    message = str(raised.value)
    assert "data.csv" in message and "'targt'" in message
    assert "did you mean 'target'" in message


def test_csv_source_names_a_non_numeric_cell(tmp_path):
    """A cell that is not a number is a DataError naming file:line, the column and the cell."""
    text = "x0,x1,target\n1,2,3\n4,5,6\n7,abc,9\n"
    (tmp_path / "data.csv").write_text(text, encoding="utf-8")
    source = {"source": "csv", "path": "data.csv", "columns": {"x": ["x0", "x1"], "y": ["target"]}}
    path = write_spec(tmp_path, _linear_spec(source))
    with pytest.raises(graphnet.DataError) as raised:
        graphnet.train(graphnet.load_spec(path), tmp_path / "run")
    message = str(raised.value)
    assert "data.csv:4" in message
    assert "'x1'" in message and "'abc'" in message


def test_csv_with_a_byte_order_mark(tmp_path):
    """A CSV saved with a byte-order mark (as spreadsheets do) reads its first column by name."""
    rows = "x0,x1,y\n0.5,0.25,1.25\n1.0,0.5,5.0\n"
    (tmp_path / "data.csv").write_text(rows, encoding="utf-8-sig")
    spec = seed_spec()
    spec["inputs"] = {"a": {"shape": [2]}, "y": {"shape": [1]}}
    spec["nodes"] = [dict(node) for node in spec["nodes"]]
    spec["nodes"][0]["inputs"] = ["a"]
    spec["data"] = {"source": "csv", "path": "data.csv", "columns": {"a": ["x0", "x1"], "y": ["y"]}}
    loaded = graphnet.load_spec(write_spec(tmp_path, spec))
    from graphnet.dataset import load_data, streams

    data = load_data(loaded, streams(0)["data"])
    np.testing.assert_array_equal(data["a"], [[0.5, 0.25], [1.0, 0.5]])


def test_resume_without_a_checkpoint_says_so(tmp_path):
    """--resume on a folder with no run trains from epoch 1 and warns that it does."""
    product_data(tmp_path, 10)
    path = write_spec(tmp_path, seed_spec(epochs=2))
    with pytest.warns(graphnet.GraphnetWarning, match="no checkpoint to continue from"):
        history = graphnet.train(graphnet.load_spec(path), tmp_path / "run", resume=True)
    assert [r["epoch"] for r in history] == [1, 2]
