"""The network: built-in layer and loss gradients, whole-graph backward, forward, predict,
weights and the order nodes run in.

References are never the code under test: central finite differences in float64 and numpy
closed forms written out here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import built_in, write_spec

import graphnet

EPS = 1e-6


def numeric_grad(f: Callable[[], float], array: np.ndarray, eps: float = EPS) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to every element of ``array``.

    ``array`` is perturbed in place and restored; ``f`` must read it on every call.
    """
    grad = np.zeros(array.shape, dtype=np.float64)
    for index in np.ndindex(array.shape):
        old = array[index]
        array[index] = old + eps
        plus = f()
        array[index] = old - eps
        minus = f()
        array[index] = old
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def assert_grad(analytic: Any, numeric: np.ndarray, what: str) -> None:
    assert analytic is not None, f"{what}: no gradient"
    analytic = np.asarray(analytic)
    assert analytic.shape == numeric.shape, f"{what}: shape {analytic.shape} != {numeric.shape}"
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8, err_msg=what)


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values in ±[0.1, 1): far from ReLU's kink compared to the finite-difference step."""
    return rng.uniform(0.1, 1.0, shape) * rng.choice([-1.0, 1.0], shape)


def slot_values(network: graphnet.Network, arrays: dict[str, np.ndarray]) -> list[Any]:
    """The value list ``Network.train_step`` takes: graph inputs by slot, nodes empty."""
    return network.values(arrays, list(arrays))


def train_plan(network: graphnet.Network) -> Any:
    """The plan ``train_step`` runs: the one computing every loss's inputs."""
    return network.plan([ref for loss in network.graph.losses for ref in loss.inputs])


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0)


# -- built-in layers and losses against finite differences -----------------------------------


@pytest.mark.parametrize(
    ("x_shape", "bias"),
    [((4, 3), True), ((4, 3), False), ((2, 3, 3), True), ((2, 3, 3), False)],
    ids=["2d-bias", "2d-no-bias", "3d-bias", "3d-no-bias"],
)
def test_dense_gradients_match_finite_differences(x_shape, bias):
    """dense's backward gives d loss / d input, W and b as finite differences of its forward,
    including on inputs with a middle axis, where it acts on the last axis only."""
    rng = np.random.default_rng(1)
    layer = built_in("layer", "dense")({"units": 2, "bias": bias})
    X = rng.standard_normal(x_shape)
    params = {"W": rng.standard_normal((x_shape[-1], 2))}
    if bias:
        params["b"] = rng.standard_normal(2)
    R = rng.standard_normal((*x_shape[:-1], 2))  # loss = sum(Y * R), so dL/dY = R

    Y, cache = layer.forward(params, [X], True)
    expected = np.einsum("...i,io->...o", X, params["W"]) + (params["b"] if bias else 0.0)
    np.testing.assert_allclose(Y, expected, rtol=1e-12)
    in_grads, param_grads = layer.backward(params, cache, R)

    def loss() -> float:
        return float(np.sum(layer.forward(params, [X], True)[0] * R))

    assert len(in_grads) == 1
    assert_grad(in_grads[0], numeric_grad(loss, X), "input X")
    assert set(param_grads) == set(params)
    for name, value in params.items():
        assert_grad(param_grads[name], numeric_grad(loss, value), f"parameter {name}")


def test_relu_gradient_matches_finite_differences():
    """relu is max(x, 0) and passes the gradient where the input is positive, as finite
    differences show away from the kink at 0."""
    rng = np.random.default_rng(2)
    layer = built_in("layer", "relu")({})
    X = away_from_zero(rng, (5, 2, 3))
    R = rng.standard_normal(X.shape)
    Y, cache = layer.forward({}, [X], True)
    np.testing.assert_array_equal(Y, relu(X))
    in_grads, param_grads = layer.backward({}, cache, R)

    def loss() -> float:
        return float(np.sum(layer.forward({}, [X], True)[0] * R))

    assert param_grads == {}
    assert_grad(in_grads[0], numeric_grad(loss, X), "input X")


@pytest.mark.parametrize("shape", [(6, 1), (4, 3), (3, 2, 2)])
def test_mse_value_and_gradient(shape):
    """mse is mean((prediction - target)²) over all elements, and its gradient for the
    prediction (and for the target, if it gives one) matches finite differences."""
    rng = np.random.default_rng(3)
    loss = built_in("loss", "mse")({})
    prediction, target = rng.standard_normal(shape), rng.standard_normal(shape)
    value, cache = loss.forward([prediction, target])
    assert float(value) == pytest.approx(np.mean((prediction - target) ** 2), rel=1e-14)
    grads = loss.backward(cache)
    assert len(grads) == 2

    def f() -> float:
        return float(loss.forward([prediction, target])[0])

    assert_grad(grads[0], numeric_grad(f, prediction), "prediction")
    if grads[1] is not None:
        assert_grad(grads[1], numeric_grad(f, target), "target")


# -- whole graphs --------------------------------------------------------------------------


FAN_OUT = {
    "seed": 3,
    "inputs": {
        "x": {"shape": [3]},
        "t": {"shape": [4]},
        "y1": {"shape": [2]},
        "y2": {"shape": [1]},
    },
    "nodes": [
        {"name": "hidden", "type": "dense", "inputs": ["x"], "units": 4, "init": "normal"},
        {"name": "act", "type": "relu", "inputs": ["hidden"]},
        {"name": "head_a", "type": "dense", "inputs": ["act"], "units": 2, "init": "normal"},
        {"name": "head_b", "type": "dense", "inputs": ["act"], "units": 1, "init": "normal"},
    ],
    "loss": [
        {"type": "mse", "inputs": ["head_a", "y1"], "weight": 0.3},
        {"type": "mse", "inputs": ["head_b", "y2"], "weight": 2.0},
        {"type": "mse", "inputs": ["act", "t"], "weight": 0.5},
    ],
}

PATHSUM_PLUGIN = '''
import graphnet


class PathSum(graphnet.Layer):
    """Elementwise sum of two inputs of one shape."""

    type = "pathsum_executor_test"
    arity = 2

    def forward(self, params, inputs, training):
        a, b = inputs
        return a + b, None

    def backward(self, params, cache, grad):
        return [grad, grad], {}


@graphnet.hookimpl
def graphnet_layers():
    return [PathSum]
'''

TWO_PATHS = {
    "seed": 5,
    "inputs": {"x": {"shape": [3]}, "y": {"shape": [2]}, "z": {"shape": [4]}},
    "nodes": [
        {"name": "hidden", "type": "dense", "inputs": ["x"], "units": 4, "init": "normal"},
        {"name": "act", "type": "relu", "inputs": ["hidden"]},
        {"name": "side", "type": "dense", "inputs": ["act"], "units": 4, "init": "normal"},
        # act reaches join directly and through side; join feeds twice twice
        {"name": "join", "type": "pathsum_executor_test", "inputs": ["act", "side"]},
        {"name": "twice", "type": "pathsum_executor_test", "inputs": ["join", "join"]},
        {"name": "out", "type": "dense", "inputs": ["twice"], "units": 2, "init": "normal"},
    ],
    "loss": [
        {"type": "mse", "inputs": ["out", "y"], "weight": 1.0},
        {"type": "mse", "inputs": ["join", "z"], "weight": 0.7},
    ],
}


def _check_graph_gradients(
    network: graphnet.Network,
    arrays: dict[str, np.ndarray],
    losses: list[tuple[str, str, float]],
    kinked: list[str],
) -> None:
    """Compare train_step's parameter gradients with finite differences of the weighted total
    loss, computed here from the nodes' outputs with numpy's own mean squared error."""

    def total() -> float:
        out = {**arrays, **network.forward(arrays)}
        return float(sum(w * np.mean((out[p] - out[t]) ** 2) for p, t, w in losses))

    outputs = network.forward(arrays)
    for name in kinked:  # finite differences are only valid away from ReLU's kink
        assert np.min(np.abs(outputs[name])) > 1e-3, f"{name} too close to 0 for this check"

    loss = network.train_step(slot_values(network, arrays))
    assert loss == pytest.approx(total(), rel=1e-12)
    assert set(network.grads) == set(network.params)
    for key, param in network.params.items():
        assert_grad(network.grads[key], numeric_grad(total, param), f"parameter {key}")


def test_fan_out_gradients_are_summed(tmp_path):
    """A node feeding two heads and a loss of its own gets the sum of all three gradients,
    each loss scaled by its weight: train_step's gradients equal finite differences of the
    weighted total loss."""
    spec = graphnet.load_spec(write_spec(tmp_path, FAN_OUT))
    network = graphnet.build(spec)
    rng = np.random.default_rng(0)
    arrays = {
        "x": rng.standard_normal((6, 3)),
        "t": rng.standard_normal((6, 4)),
        "y1": rng.standard_normal((6, 2)),
        "y2": rng.standard_normal((6, 1)),
    }
    losses = [("head_a", "y1", 0.3), ("head_b", "y2", 2.0), ("act", "t", 0.5)]
    _check_graph_gradients(network, arrays, losses, kinked=["hidden"])


def test_node_reaching_another_through_two_paths(tmp_path):
    """A node that reaches a later node directly and through another node, and a node that is
    both inputs of the next, get their gradients summed over every path."""
    plugin = tmp_path / "pathsum_executor_test.py"
    plugin.write_text(PATHSUM_PLUGIN, encoding="utf-8")
    spec = graphnet.load_spec(write_spec(tmp_path, TWO_PATHS), plugins=[str(plugin)])
    network = graphnet.build(spec)
    rng = np.random.default_rng(1)
    arrays = {
        "x": rng.standard_normal((5, 3)),
        "y": rng.standard_normal((5, 2)),
        "z": rng.standard_normal((5, 4)),
    }
    losses = [("out", "y", 1.0), ("join", "z", 0.7)]
    _check_graph_gradients(network, arrays, losses, kinked=["hidden"])


# -- forward, predict, weights -------------------------------------------------------------


SEED_NET = {
    "inputs": {"x": {"shape": [2]}, "y": {"shape": [1]}},
    "nodes": [
        {"name": "hidden", "type": "dense", "inputs": ["x"], "units": 5, "init": "uniform"},
        {"name": "act", "type": "relu", "inputs": ["hidden"]},
        {"name": "out", "type": "dense", "inputs": ["act"], "units": 1, "init": "uniform"},
    ],
    "loss": {"type": "mse", "inputs": ["out", "y"]},
}


def _seed_network(tmp_path: Path, **changes: Any) -> graphnet.Network:
    return graphnet.build(graphnet.load_spec(write_spec(tmp_path, {**SEED_NET, **changes})))


def _notebook_forward(x: np.ndarray, p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    hidden = x @ p["hidden/W"] + p["hidden/b"]
    act = relu(hidden)
    return {"hidden": hidden, "act": act, "out": act @ p["out/W"] + p["out/b"]}


def test_forward_gives_every_node_output(tmp_path):
    """Network.forward returns the output of every node computable from the given inputs,
    equal to the notebook's forward pass; targets are not needed."""
    network = _seed_network(tmp_path)
    x = np.random.default_rng(0).random((7, 2)) - 0.5
    outputs = network.forward({"x": x})
    expected = _notebook_forward(x, network.params)
    assert set(outputs) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(outputs[name], value, rtol=1e-13, err_msg=name)


def test_predict_gives_the_spec_outputs(tmp_path):
    """Network.predict returns exactly the spec's outputs (by default the loss's prediction),
    computed from the inputs they depend on."""
    x = np.random.default_rng(1).random((4, 2))
    network = _seed_network(tmp_path)
    predicted = network.predict({"x": x})
    assert list(predicted) == ["out"]
    np.testing.assert_allclose(
        predicted["out"], _notebook_forward(x, network.params)["out"], rtol=1e-13
    )

    network = _seed_network(tmp_path, outputs=["act", "out"])
    predicted = network.predict({"x": x})
    assert list(predicted) == ["act", "out"]
    expected = _notebook_forward(x, network.params)
    np.testing.assert_allclose(predicted["act"], expected["act"], rtol=1e-13)


def test_predict_names_a_missing_input(tmp_path):
    """Predicting without an input the outputs need is a DataError naming that input."""
    network = _seed_network(tmp_path)
    with pytest.raises(graphnet.DataError, match="'x'"):
        network.predict({"y": np.zeros((2, 1))})


def _weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "hidden/W": rng.random((2, 5)),
        "hidden/b": rng.random(5),
        "out/W": rng.random((5, 1)),
        "out/b": rng.random(1),
    }


@pytest.mark.parametrize("from_file", [False, True], ids=["dict", "npz"])
def test_load_weights_replaces_parameters(tmp_path, from_file):
    """load_weights (an NPZ file or a dict keyed `<node>/<param>`) replaces every parameter,
    and the network computes with the new values."""
    network = _seed_network(tmp_path)
    weights = _weights(np.random.default_rng(4))
    if from_file:
        np.savez(tmp_path / "w.npz", **weights)
        network.load_weights(tmp_path / "w.npz")
    else:
        network.load_weights(weights)
    for key, value in weights.items():
        np.testing.assert_array_equal(network.params[key], value)
    x = np.random.default_rng(5).random((3, 2))
    np.testing.assert_allclose(
        network.predict({"x": x})["out"], _notebook_forward(x, weights)["out"], rtol=1e-13
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda w: w.pop("out/b"), "out/b"),
        (lambda w: w.update({"extra/W": np.zeros((2, 2))}), "extra/W"),
        (lambda w: w.update({"out/W": np.zeros((5, 2))}), "out/W"),
        (lambda w: w["out/b"].fill(np.nan), "out/b"),
    ],
    ids=["missing", "extra", "wrong-shape", "not-finite"],
)
@pytest.mark.parametrize("from_file", [False, True], ids=["dict", "npz"])
def test_load_weights_names_a_bad_key(tmp_path, change, named, from_file):
    """A missing, unexpected, wrongly shaped or non-finite key is a DataError naming the key
    (and the file), and leaves every parameter as it was, even those checked before it."""
    network = _seed_network(tmp_path)
    before = {k: v.copy() for k, v in network.params.items()}
    weights = _weights(np.random.default_rng(6))
    weights["hidden/W"] = weights["hidden/W"] + 1  # differs from `before` even if loaded first
    change(weights)
    source: Any = weights
    if from_file:
        source = tmp_path / "bad.npz"
        np.savez(source, **weights)
    with pytest.raises(graphnet.DataError) as raised:
        network.load_weights(source)
    assert named in str(raised.value)
    if from_file:
        assert "bad.npz" in str(raised.value)
    for key, value in before.items():
        np.testing.assert_array_equal(network.params[key], value, err_msg=key)


# -- order -----------------------------------------------------------------------------------


def _order(tmp_path: Path, nodes: list[dict[str, Any]], name: str = "spec.yaml") -> list[str]:
    spec = graphnet.load_spec(write_spec(tmp_path, {**SEED_NET, "nodes": nodes}, name))
    return [node.name for node in graphnet.build(spec).graph.nodes]


@pytest.mark.filterwarnings("ignore::graphnet.GraphnetWarning")  # heads that reach no loss
def test_order_follows_dependencies_then_the_file(tmp_path):
    """Nodes run after their inputs whatever their place in the file; nodes ready at the same
    time run in file order, so the order is the same on every build."""
    hidden, act, out = SEED_NET["nodes"]
    assert _order(tmp_path, [out, act, hidden]) == ["hidden", "act", "out"]
    assert _order(tmp_path, [act, hidden, out]) == ["hidden", "act", "out"]

    head_a = {"name": "head_a", "type": "dense", "inputs": ["act"], "units": 3}
    head_b = {"name": "head_b", "type": "dense", "inputs": ["act"], "units": 3}
    assert _order(tmp_path, [hidden, act, head_b, head_a, out]) == [
        "hidden",
        "act",
        "head_b",
        "head_a",
        "out",
    ]
    assert _order(tmp_path, [head_a, out, head_b, act, hidden]) == [
        "hidden",
        "act",
        "head_a",
        "out",
        "head_b",
    ]
    first = _order(tmp_path, [head_b, hidden, out, act, head_a])
    assert all(_order(tmp_path, [head_b, hidden, out, act, head_a]) == first for _ in range(3))


def _train_weights(tmp_path: Path, spec: dict[str, Any], name: str, **kwargs: Any) -> Any:
    path = write_spec(tmp_path, spec, f"{name}.yaml")
    history = graphnet.train(graphnet.load_spec(path), tmp_path / f"run-{name}", **kwargs)
    with np.load(tmp_path / f"run-{name}" / "weights.npz") as archive:
        weights = {k: archive[k] for k in archive.files}
    return [r["loss"] for r in history], weights


def test_nodes_out_of_order_train_identically(tmp_path):
    """A spec with its nodes listed out of order trains to the same bits as the same spec in
    order: same initial weights, same losses, same final weights."""
    rng = np.random.default_rng(7)
    x = rng.random((40, 2))
    np.savez(tmp_path / "data.npz", x=x, y=10 * x[:, :1] * x[:, 1:])
    base = {
        **SEED_NET,
        "data": {"source": "npz", "path": "data.npz"},
        "train": {"epochs": 3, "batch_size": 16, "optimizer": {"type": "sgd", "lr": 0.05}},
    }
    hidden, act, out = SEED_NET["nodes"]
    losses, weights = _train_weights(tmp_path, base, "ordered")
    shuffled_losses, shuffled = _train_weights(
        tmp_path, {**base, "nodes": [out, act, hidden]}, "reversed"
    )
    assert losses == shuffled_losses
    assert weights.keys() == shuffled.keys()
    for key in weights:
        np.testing.assert_array_equal(weights[key], shuffled[key], err_msg=key)

    # with two heads on one node, from given weights
    head = {"name": "head", "type": "dense", "inputs": ["act"], "units": 1}
    fan = {
        **base,
        "inputs": {**base["inputs"], "z": {"shape": [1]}},
        "nodes": [hidden, act, out, head],
        "loss": [
            {"type": "mse", "inputs": ["out", "y"]},
            {"type": "mse", "inputs": ["head", "z"], "weight": 0.5},
        ],
    }
    np.savez(tmp_path / "data.npz", x=x, y=10 * x[:, :1] * x[:, 1:], z=x[:, :1] - x[:, 1:])
    start = {**_weights(rng), "head/W": rng.random((5, 1)), "head/b": rng.random(1)}
    losses, weights = _train_weights(tmp_path, fan, "fan", weights=start)
    shuffled_losses, shuffled = _train_weights(
        tmp_path, {**fan, "nodes": [head, out, act, hidden]}, "fan-reversed", weights=start
    )
    assert losses == shuffled_losses
    for key in weights:
        np.testing.assert_array_equal(weights[key], shuffled[key], err_msg=key)


RESIDUAL = {
    "seed": 4,
    "inputs": {"x": {"shape": [3]}, "y": {"shape": [2]}},
    "nodes": [
        {"name": "embed", "type": "dense", "inputs": ["x"], "units": 4},
        {"name": "d1", "type": "dense", "inputs": ["embed"], "units": 4},
        {"name": "r1", "type": "relu", "inputs": ["d1"]},
        {"name": "skip", "type": "add", "inputs": ["embed", "r1"]},
        {"name": "both", "type": "concat", "inputs": ["skip", "embed"]},
        {"name": "out", "type": "dense", "inputs": ["both"], "units": 2},
    ],
    "loss": [
        {"type": "mse", "inputs": ["out", "y"]},
        {"type": "mse", "inputs": ["skip", "embed"], "weight": 0.1},
    ],
}


def _steps(network: graphnet.Network, arrays: dict[str, np.ndarray], steps: int) -> list[Any]:
    """Plain SGD steps through train_step; the weights after each."""
    seen = []
    for _ in range(steps):
        network.train_step(slot_values(network, arrays))
        for key, param in network.params.items():
            param -= 0.01 * network.grads[key]
        seen.append(network.weights())
    return seen


def test_compiled_passes_give_the_same_bits(tmp_path, monkeypatch):
    """After a few steps a plan's passes run as generated code; every step gives exactly the
    same weights as the step-by-step loop (fan-out, a skip connection, weighted losses)."""
    import graphnet.plan as plan_module

    rng = np.random.default_rng(2)
    arrays = {"x": rng.standard_normal((5, 3)), "y": rng.standard_normal((5, 2))}
    path = write_spec(tmp_path, RESIDUAL)
    monkeypatch.setattr(
        plan_module, "COMPILE_NODES", 0
    )  # as for a plan too large to compile at once
    monkeypatch.setattr(plan_module, "COMPILE_AFTER", 10**9)
    looped_network = graphnet.build(graphnet.load_spec(path))
    looped = _steps(looped_network, arrays, 6)
    assert not train_plan(looped_network).compiled
    monkeypatch.setattr(plan_module, "COMPILE_AFTER", 3)  # compiled after its third step
    network = graphnet.build(graphnet.load_spec(path))
    compiled = _steps(network, arrays, 6)
    assert train_plan(network).compiled
    monkeypatch.setattr(plan_module, "COMPILE_NODES", 2000)  # compiled when built
    built = _steps(graphnet.build(graphnet.load_spec(path)), arrays, 6)
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(compiled, built, strict=True) for k in a)
    for a, b in zip(looped, compiled, strict=True):
        for key in a:
            assert np.array_equal(a[key], b[key]), key


def test_compiled_passes_name_the_failing_node(tmp_path, monkeypatch):
    """A plugin that fails inside a compiled pass is still named, with its spec location."""
    import graphnet.plan as plan_module

    monkeypatch.setattr(plan_module, "COMPILE_AFTER", 1)
    network = graphnet.build(graphnet.load_spec(write_spec(tmp_path, RESIDUAL)))
    rng = np.random.default_rng(2)
    arrays = {"x": rng.standard_normal((5, 3)), "y": rng.standard_normal((5, 2))}
    network.train_step(slot_values(network, arrays))
    relu_layer = network.layers["r1"]

    def broken(*args: Any) -> Any:
        raise ValueError("boom")

    monkeypatch.setattr(relu_layer, "backward", broken)
    train_plan(network).compile()
    with pytest.raises(
        graphnet.PluginFailure, match=r"node 'r1' \(relu\): backward failed: ValueError: boom"
    ) as caught:
        network.train_step(slot_values(network, arrays))
    assert "spec.yaml:" in str(caught.value)


@pytest.mark.parametrize(
    ("method", "broken", "message"),
    [
        ("forward", lambda inputs: 1 / 0, r"forward failed: ZeroDivisionError"),
        ("forward", lambda inputs: (np.ones(2), None), r"forward returned ndarray \[2\] as the"),
        ("backward", lambda cache: {}[0], r"backward failed: KeyError: 0"),
    ],
)
def test_the_generated_training_step_names_a_failing_loss(
    tmp_path: Path, method: str, broken: Any, message: str
) -> None:
    """Once its first step has checked every plugin, a network trains by one generated function
    per step (forward, losses, backward); a loss failing in it is named as before."""
    network = graphnet.build(graphnet.load_spec(write_spec(tmp_path, RESIDUAL)))
    rng = np.random.default_rng(2)
    arrays = {"x": rng.standard_normal((5, 3)), "y": rng.standard_normal((5, 2))}
    network.train_step(slot_values(network, arrays))
    assert train_plan(network).train_step is not None
    plan = train_plan(network)
    setattr(network.loss_plugins[0], method, broken)
    plan.compile()  # binds the broken method
    with pytest.raises(graphnet.GraphnetError, match=message) as caught:
        network.train_step(slot_values(network, arrays))
    assert "loss 'mse'" in str(caught.value)


def test_two_networks_of_one_spec_share_no_plugin_state(tmp_path):
    """Each network owns its layer and loss instances: training one never writes into the
    other's gradients (the engine's hints point every layer at its own network's buffers)."""
    spec = graphnet.load_spec(write_spec(tmp_path, RESIDUAL))
    a, b = graphnet.build(spec), graphnet.build(spec)
    assert not set(map(id, a.layers.values())) & set(map(id, b.layers.values()))
    assert not set(map(id, a.loss_plugins)) & set(map(id, b.loss_plugins))
    rng = np.random.default_rng(3)
    arrays = {"x": rng.standard_normal((5, 3)), "y": rng.standard_normal((5, 2))}
    b.train_step(slot_values(b, arrays))
    b_grads = b.grads.flat.copy()
    a.train_step(slot_values(a, {k: 2 * v for k, v in arrays.items()}))
    assert np.array_equal(b.grads.flat, b_grads)
    assert not np.array_equal(a.grads.flat, b_grads)


def test_two_threads_training_one_spec_give_the_bits_of_two_plain_runs(tmp_path):
    """`graphnet.train` from two threads at once on one Spec object gives exactly the weights of
    the same runs one after the other (a notebook, a thread-pool sweep)."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(4)
    np.savez(tmp_path / "data.npz", x=rng.standard_normal((64, 3)), y=rng.standard_normal((64, 2)))
    spec_data = {
        **RESIDUAL,
        "data": {"source": "npz", "path": "data.npz"},
        "train": {"epochs": 20, "batch_size": 8, "optimizer": {"type": "adam", "lr": 0.01}},
    }
    spec = graphnet.load_spec(write_spec(tmp_path, spec_data))
    graphnet.train(spec, tmp_path / "alone")
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, so that their steps interleave
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda name: graphnet.train(spec, tmp_path / name), ["one", "two"]))
    finally:
        sys.setswitchinterval(interval)
    with np.load(tmp_path / "alone" / "weights.npz") as alone:
        for name in ("one", "two"):
            with np.load(tmp_path / name / "weights.npz") as other:
                for key in alone.files:
                    assert np.array_equal(alone[key], other[key]), (name, key)


def test_a_loss_of_graph_inputs_only_is_a_located_spec_error(tmp_path):
    """A loss that reads only graph inputs trains nothing: refused when the spec is loaded,
    naming the loss's line, instead of failing inside the first training step."""
    spec_data = {
        "inputs": {"y": {"shape": [1]}},
        "nodes": [{"name": "h", "type": "dense", "inputs": ["y"], "units": 1}],
        "loss": {"type": "mse", "inputs": ["y", "y"]},
    }
    with pytest.raises(graphnet.SpecError, match=r"loss\[0\]\.inputs: loss 'mse' reads only graph"):
        graphnet.load_spec(write_spec(tmp_path, spec_data))


def test_an_empty_backward_pass_is_no_error():
    """A plan with no steps (the targets are graph inputs) runs both passes as no-ops."""
    from graphnet.plan import Plan

    plan = Plan([], ["x"], 1)
    values, caches, grads = [np.ones((2, 1))], [None], [None]
    plan.loop_forward(values, caches, True)
    plan.loop_backward(values, caches, grads)
    plan.compile()
    plan.forward_cached(values, caches, True)
    plan.backward(values, caches, grads)
