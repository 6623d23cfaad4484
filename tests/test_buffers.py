"""Buffers: state a layer keeps that is not trained (batchnorm's running statistics).

They take no gradient, the optimizer never sees them, `forward` updates them while training,
and they are saved, loaded and resumed exactly like parameters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from click.testing import CliRunner

import graphnet
from graphnet.cli import cli

SPEC = {
    "seed": 3,
    "data": {"source": "npz", "path": "data.npz", "validation": 0.25},
    "inputs": {"x": {"shape": [6, 6, 2]}, "y": {"shape": [1]}},
    "nodes": [
        {"name": "conv", "type": "conv2d", "inputs": ["x"], "filters": 4, "kernel": 3},
        {"name": "norm", "type": "batchnorm", "inputs": ["conv"]},
        {"name": "pool", "type": "maxpool2d", "inputs": ["norm"]},
        {"name": "act", "type": "relu", "inputs": ["pool"]},
        {"name": "flat", "type": "flatten", "inputs": ["act"]},
        {"name": "drop", "type": "dropout", "inputs": ["flat"], "rate": 0.2},
        {"name": "out", "type": "dense", "inputs": ["drop"], "units": 3},
    ],
    "loss": {"type": "cross_entropy", "inputs": ["out", "y"]},
    "train": {
        "epochs": 4,
        "batch_size": 8,
        "checkpoint_every": 0,
        "optimizer": {"type": "adam", "lr": 0.01, "weight_decay": 0.1},
    },
}


def write(folder: Path, spec: dict | None = None) -> Path:
    rng = np.random.default_rng(0)
    np.savez(
        folder / "data.npz",
        x=rng.standard_normal((40, 6, 6, 2)) * 3 + 1,
        y=rng.integers(0, 3, (40, 1)).astype(float),
    )
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec or SPEC, sort_keys=False), encoding="utf-8")
    return path


def test_buffers_are_not_trained_but_move_and_are_saved(tmp_path):
    """The optimizer (with weight decay) never sees the running statistics; training moves
    them (forward updates them); weights.npz and checkpoint.npz hold them."""
    network = graphnet.build(graphnet.load_spec(write(tmp_path)))
    assert set(network.buffers) == {"norm/running_mean", "norm/running_var"}
    assert not set(network.buffers) & set(network.params)
    assert not set(network.buffers) & set(network.grads)
    graphnet.train(graphnet.load_spec(write(tmp_path)), tmp_path / "run")
    with np.load(tmp_path / "run" / "weights.npz") as weights:
        assert not np.array_equal(weights["norm/running_mean"], np.zeros(4))
        assert not np.array_equal(weights["norm/running_var"], np.ones(4))
    with np.load(tmp_path / "run" / "checkpoint.npz") as checkpoint:
        assert "param/norm/running_var" in checkpoint.files
        assert not any("running" in key for key in checkpoint.files if key.startswith("state/"))


def test_the_running_statistics_are_the_batches_own(tmp_path):
    """After one full-batch step the running mean is momentum times the batch mean of the
    batchnorm's input (closed form of torch's update), computed from the network's own forward."""
    spec = graphnet.load_spec(write(tmp_path), {"train.batch_size": None})
    network = graphnet.build(spec)
    with np.load(tmp_path / "data.npz") as data:
        x = data["x"]
    conv = network.forward({"x": x})["conv"]
    expected_mean = 0.1 * conv.reshape(-1, 4).mean(axis=0)
    expected_var = 0.9 + 0.1 * conv.reshape(-1, 4).var(axis=0, ddof=1)
    network.train_step(network.values({"x": x, "y": np.zeros((40, 1))}, ["x", "y"]))
    np.testing.assert_allclose(network.buffers["norm/running_mean"], expected_mean, rtol=1e-12)
    np.testing.assert_allclose(network.buffers["norm/running_var"], expected_var, rtol=1e-12)


def test_a_resumed_run_with_batchnorm_and_dropout_gives_the_same_bits(tmp_path):
    """Stopped after epoch 2 and resumed, a run with buffers and dropout ends with exactly the
    weights and buffers of one that never stopped."""
    path = write(tmp_path)
    graphnet.train(graphnet.load_spec(path), tmp_path / "whole")
    graphnet.train(graphnet.load_spec(path, {"train.epochs": 2}), tmp_path / "cut")
    graphnet.train(graphnet.load_spec(path), tmp_path / "cut", resume=True)
    with (
        np.load(tmp_path / "whole" / "weights.npz") as a,
        np.load(tmp_path / "cut" / "weights.npz") as b,
    ):
        assert a.files == b.files
        for key in a.files:
            assert np.array_equal(a[key], b[key]), key


def test_weights_load_buffers_like_parameters(tmp_path):
    """`--weights` and `load_run` load the buffers too; a weights file without them is refused
    naming the missing key."""
    path = write(tmp_path)
    graphnet.train(graphnet.load_spec(path), tmp_path / "run")
    network = graphnet.load_run(tmp_path / "run")
    with np.load(tmp_path / "run" / "weights.npz") as weights:
        assert np.array_equal(network.buffers["norm/running_var"], weights["norm/running_var"])
        partial = {k: weights[k] for k in weights.files if "running" not in k}
    np.savez(tmp_path / "partial.npz", **partial)
    result = CliRunner().invoke(
        cli,
        [
            "run",
            str(path),
            "--out",
            str(tmp_path / "b"),
            "--weights",
            str(tmp_path / "partial.npz"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "missing norm/running_mean" in result.output


def test_gradcheck_passes_on_conv_batchnorm_and_pooling(tmp_path):
    """`graphnet gradcheck` on a spec of conv2d, batchnorm, relu, pooling and dense checks every
    node against finite differences, leaving the buffers out."""
    result = CliRunner().invoke(cli, ["gradcheck", str(write(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "norm" in result.output and "ok: the gradients of" in result.output


def test_an_epoch_of_one_step_interrupted_before_its_step_keeps_the_buffers_before_it(tmp_path):
    """An epoch of one step keeps no copy of its parameters to fall back to (they change only
    by its step), but its forward pass moves the running statistics first: the state it falls
    back to holds them as they were."""
    import signal

    import pytest

    from graphnet.dataset import prepare, streams
    from graphnet.errors import Interrupted
    from graphnet.stop import Stop
    from graphnet.trainer import Trainer

    single = {**SPEC, "data": {**SPEC["data"], "validation": 0}}
    single["train"] = {**SPEC["train"], "batch_size": None}
    spec = graphnet.load_spec(write(tmp_path, single))
    rngs = streams(spec.seed)
    network = graphnet.build(spec)
    trainer = Trainer(spec, network, prepare(spec, rngs), rngs)
    trainer.stop = Stop()
    params, buffers = network.params.flat.copy(), network.buffers.flat.copy()
    trainer.keep_rollback(0)
    trainer.stop.signal_number = signal.SIGINT  # as a Ctrl-C during the forward pass
    with pytest.raises(Interrupted):
        trainer.run_epoch(1)
    assert not np.array_equal(network.buffers.flat, buffers)  # the forward pass moved them
    fallback = trainer.fallback()
    assert fallback is not None
    assert fallback.flat is network.params.flat and np.array_equal(fallback.flat, params)
    assert np.array_equal(fallback.buffers, buffers)
