"""batchnorm and layernorm against their definitions, batchnorm's running statistics (buffers),
and check_layer's handling of buffers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import graphnet
from graphnet.registry import get_registry
from graphnet.testing import check_layer


def layer(name: str, **options: Any) -> Any:
    return get_registry().entries("layer")[name].cls(options)


def test_batchnorm_normalizes_each_channel_over_batch_and_space() -> None:
    """While training, each channel of [N, H, W, C] has mean beta and standard deviation gamma
    afterwards (biased variance, eps aside)."""
    rng = np.random.default_rng(0)
    X = 3 + 2 * rng.standard_normal((4, 3, 5, 2))
    bn = layer("batchnorm", eps=1e-12)
    params = bn.init_params([(3, 5, 2)], rng)
    params["gamma"], params["beta"] = np.array([2.0, 0.5]), np.array([1.0, -1.0])
    out, _ = bn.forward(params, [X], True)
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), [1.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), [2.0, 0.5], rtol=1e-9)


def test_batchnorm_buffers_and_their_updates() -> None:
    """batchnorm declares running_mean and running_var as buffers (starting at 0 and 1); a
    training pass updates them in place, r = 0.9·r + 0.1·batch, the variance unbiased (n - 1)."""
    bn = layer("batchnorm")
    assert bn.buffers == ("running_mean", "running_var")
    params = bn.init_params([(3,)], np.random.default_rng(0))
    np.testing.assert_array_equal(params["running_mean"], 0)
    np.testing.assert_array_equal(params["running_var"], 1)
    mean, var = params["running_mean"], params["running_var"]
    X = np.random.default_rng(1).standard_normal((5, 3))
    bn.forward(params, [X], True)
    assert params["running_mean"] is mean and params["running_var"] is var  # in place
    np.testing.assert_allclose(mean, 0.1 * X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(var, 0.9 + 0.1 * X.var(axis=0, ddof=1), rtol=1e-12)


def test_batchnorm_outside_training_uses_the_buffers_and_changes_nothing() -> None:
    """With training false the output is gamma·(x - running_mean)/√(running_var + eps) + beta,
    and the buffers stay as they are."""
    bn = layer("batchnorm", eps=1e-3)
    params = {
        "gamma": np.array([2.0]),
        "beta": np.array([0.5]),
        "running_mean": np.array([1.0]),
        "running_var": np.array([4.0]),
    }
    X = np.array([[1.0], [3.0], [-1.0]])
    out, cache = bn.forward(params, [X], False)
    np.testing.assert_allclose(out[:, 0], 2 * (X[:, 0] - 1) / np.sqrt(4.001) + 0.5)
    assert params["running_mean"][0] == 1.0 and params["running_var"][0] == 4.0
    (dX,), grads = bn.backward(params, cache, np.ones_like(out))
    np.testing.assert_allclose(dX, 2 / np.sqrt(4.001))
    assert set(grads) == {"gamma", "beta"}


def test_batchnorm_refuses_a_single_value_per_channel_while_training() -> None:
    """A training batch of one sample of [C] has no variance: a DataError that says so (as torch)."""
    bn = layer("batchnorm")
    params = bn.init_params([(2,)], np.random.default_rng(0))
    with pytest.raises(graphnet.DataError, match="more than one value per feature"):
        bn.forward(params, [np.ones((1, 2))], True)
    bn.forward(params, [np.ones((1, 2))], False)  # fine outside training


def test_layernorm_normalizes_the_last_axis() -> None:
    """Each sample's last axis has mean beta and standard deviation gamma afterwards."""
    X = np.random.default_rng(2).standard_normal((3, 2, 6)) * 5 + 1
    ln = layer("layernorm", eps=1e-12)
    params = {"gamma": np.full(6, 3.0), "beta": np.full(6, 0.25)}
    out, _ = ln.forward(params, [X], True)
    np.testing.assert_allclose(out.mean(axis=-1), 0.25, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=-1), 3.0, rtol=1e-9)


@pytest.mark.parametrize("name", ["batchnorm", "layernorm"])
def test_norms_need_an_axis(name: str) -> None:
    """A per-sample shape without axes has no features to normalize: a ShapeError naming it."""
    with pytest.raises(graphnet.ShapeError, match=r"at least one axis, got \[\]"):
        layer(name).output_shape([()])


def test_check_layer_leaves_buffers_out_but_guards_parameters() -> None:
    """check_layer passes batchnorm although its forward updates the buffers, and still fails a
    layer that changes a trainable parameter in place."""
    bn = get_registry().entries("layer")["batchnorm"].cls
    check_layer(bn, {}, [(3, 2)])

    class Sloppy(bn):  # type: ignore[misc, valid-type]
        def forward(self, params: Any, inputs: Any, training: bool) -> Any:
            out, cache = super().forward(params, inputs, training)
            params["gamma"] += 1
            return out, cache

    with pytest.raises(AssertionError, match=r"parameter 'gamma' \(in forward\) was modified"):
        check_layer(Sloppy, {}, [(3,)])
