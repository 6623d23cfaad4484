"""graphnet-scale's own tests: the checks graphnet gives every plugin author, and a real run."""

from __future__ import annotations

import importlib.util
import math
import re
from importlib.metadata import entry_points
from pathlib import Path

import graphnet_scale
import numpy as np
import pydantic
import pytest
from graphnet_scale import Gain, LogCosh

import graphnet
from graphnet.registry import Registry
from graphnet.testing import check_layer, check_loss

SPEC = Path(__file__).resolve().parents[1] / "specs" / "scaled.yaml"


@pytest.mark.parametrize("start", [1.0, -2.5])
@pytest.mark.parametrize("shape", [(), (3,), (2, 4)])
def test_gain_passes_check_layer(shape, start):
    """Shapes, gradients of x and a against finite differences, float32 kept, inputs untouched."""
    worst = check_layer(Gain, {"start": start}, [shape])
    assert worst < 1e-6


def test_gain_multiplies_by_a():
    """The output is a·x, and a starts at the `start` option."""
    layer = Gain({"start": 3.0})
    params = layer.init_params([(2,)], np.random.default_rng(0))
    assert params["a"].tolist() == [3.0]
    y, _ = layer.forward(params, [np.array([[1.0, -2.0]])], training=True)
    assert y.tolist() == [[3.0, -6.0]]


def test_gain_skips_the_input_gradient_nobody_needs():
    """With the engine's hint `input_grads_needed = (False,)` the input's gradient is None and
    the gradient of a is the same bits as without the hint."""
    layer = Gain({"start": 2.0})
    params = {"a": np.array([2.0])}
    x, grad = np.array([[1.0, -2.0], [0.5, 3.0]]), np.array([[0.1, 0.2], [-0.3, 0.4]])
    _, cache = layer.forward(params, [x], training=True)
    (dx,), full = layer.backward(params, cache, grad)
    assert dx is not None
    layer.input_grads_needed = (False,)
    (skipped,), hinted = layer.backward(params, cache, grad)
    assert skipped is None
    assert hinted["a"].tobytes() == full["a"].tobytes()


@pytest.mark.parametrize("shape", [(1,), (4,), (2, 3)])
def test_log_cosh_passes_check_loss(shape):
    """Gradients of prediction and target against finite differences, float32 kept."""
    worst = check_loss(LogCosh, {}, [shape, shape], batch=5)
    assert worst < 1e-6


def test_log_cosh_matches_its_formula_and_stays_finite_far_out():
    """mean(log(cosh(prediction - target))), and |r| - log 2 where cosh overflows."""
    prediction = np.array([[0.5], [-0.2], [3.0], [-4.0]])
    target = np.zeros((4, 1))
    value, _ = LogCosh().forward([prediction, target])
    assert value == pytest.approx(np.mean(np.log(np.cosh(prediction))), rel=1e-12)
    check_loss(LogCosh, {}, [(1,), (1,)], inputs=[prediction, target])
    far = np.array([[1000.0], [-2000.0]])
    value, _ = LogCosh().forward([far, np.zeros((2, 1))])
    assert value == pytest.approx(1500.0 - math.log(2), rel=1e-12)


class WrongGain(Gain):
    """Gain whose gradient of a forgets the incoming gradient: a bug check_layer must catch."""

    def backward(self, params, cache, grad):
        X = cache
        return [params["a"] * grad], {"a": np.sum(X, keepdims=True).reshape(1)}


class WrongGainInput(Gain):
    """Gain whose gradient of x forgets to multiply by a."""

    def backward(self, params, cache, grad):
        X = cache
        return [grad.copy()], {"a": np.sum(grad * X, keepdims=True).reshape(1)}


class SummedLogCosh(LogCosh):
    """LogCosh whose gradient is of the sum, not the mean: off by the number of elements."""

    def backward(self, cache):
        dP = np.tanh(cache)
        return [dP, -dP]


class WrongTargetLogCosh(LogCosh):
    """LogCosh whose target gradient has the wrong sign."""

    def backward(self, cache):
        d_prediction, _ = super().backward(cache)
        return [d_prediction, d_prediction]


@pytest.mark.parametrize(
    ("layer_class", "message"),
    [(WrongGain, "gain parameter 'a'"), (WrongGainInput, "gain input 0")],
)
def test_check_layer_catches_a_wrong_gradient(layer_class, message):
    """A wrong backward fails check_layer, naming what is wrong."""
    with pytest.raises(AssertionError, match=message):
        check_layer(layer_class, {"start": 2.0}, [(3,)])


@pytest.mark.parametrize(
    ("loss_class", "message"),
    [(SummedLogCosh, "log_cosh input 0"), (WrongTargetLogCosh, "log_cosh input 1")],
)
def test_check_loss_catches_a_wrong_gradient(loss_class, message):
    """A wrong backward fails check_loss, naming the input whose gradient is wrong."""
    with pytest.raises(AssertionError, match=message):
        check_loss(loss_class, {}, [(2,), (2,)])


@pytest.mark.parametrize(
    ("plugin_class", "options"),
    [
        (Gain, {"sart": 2.0}),  # a misspelt option
        (Gain, {"start": "big"}),
        (LogCosh, {"delta": 1.0}),  # log_cosh takes no options
    ],
)
def test_bad_options_are_refused(plugin_class, options):
    """Unknown options and bad values are errors, not silently ignored."""
    with pytest.raises(pydantic.ValidationError):
        plugin_class(options)


def test_every_option_is_described():
    """`graphnet schema` and `graphnet plugins` can show a description of every option."""
    for plugin_class in (Gain, LogCosh):
        for name, field in plugin_class.Options.model_fields.items():
            assert field.description, f"{plugin_class.type}.{name} has no description"


def test_hooks_register_the_layer_and_the_loss():
    """The module's hook implementations give graphnet `gain` and `log_cosh`."""
    registry = Registry()
    registry.register(graphnet_scale, "graphnet-scale")
    assert registry.get("layer", "gain") is Gain
    assert registry.get("loss", "Log_Cosh") is LogCosh  # types are case-insensitive
    assert registry.entries("layer")["gain"].package == "graphnet-scale"


def _plugins() -> tuple[str, ...]:
    """Nothing when the package is installed (graphnet finds its entry point), else the module."""
    installed = any(ep.value == "graphnet_scale" for ep in entry_points(group="graphnet"))
    return () if installed else ("graphnet_scale",)


def test_the_example_spec_trains(tmp_path):
    """specs/scaled.yaml validates and trains; the run folder has the learnt gain a."""
    spec = graphnet.load_spec(SPEC, overrides={"train.epochs": 5}, plugins=_plugins())
    history = graphnet.train(spec, out_dir=tmp_path / "run")
    assert [record["epoch"] for record in history] == [1, 2, 3, 4, 5]
    assert history[-1]["loss"] < history[0]["loss"]
    with np.load(tmp_path / "run" / "weights.npz") as weights:
        assert weights["gained/a"].shape == (1,)
        assert weights["gained/a"][0] != 10.0  # it started at 10 and was trained


def test_the_example_spec_exports_to_onnx(tmp_path):
    """`gain` has a `to_onnx`: the trained example exports, and onnxruntime (when installed)
    predicts what graphnet predicts. Without onnx, export says how to install it."""
    spec = graphnet.load_spec(SPEC, overrides={"train.epochs": 1}, plugins=_plugins())
    graphnet.train(spec, out_dir=tmp_path / "run")
    model = tmp_path / "scaled.onnx"
    if importlib.util.find_spec("onnx") is None:
        with pytest.raises(graphnet.GraphnetError, match=re.escape("pip install 'graphnet[onnx]'")):
            graphnet.export_onnx(tmp_path / "run", model, plugins=_plugins())
        return
    import onnx

    graphnet.export_onnx(tmp_path / "run", model, plugins=_plugins())
    onnx.checker.check_model(str(model), full_check=True)
    assert [n.op_type for n in onnx.load(str(model)).graph.node].count("Mul") == 2
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        x = np.random.default_rng(0).random((7, 2))
        network = graphnet.load_run(tmp_path / "run", plugins=_plugins())
        (got,) = onnxruntime.InferenceSession(str(model)).run(None, {"x": x})
        np.testing.assert_allclose(got, network.predict({"x": x})["gained"], rtol=1e-10)


BLOCK_SPEC = """\
data: {source: synthetic, function: product, samples: 20}
inputs: {x: {shape: [2]}, y: {shape: [1]}}
nodes:
  - {name: body, type: gained_dense, inputs: [x], units: 2, start: 0.5, repeat: 2}
  - {name: out, type: dense, inputs: [body], units: 1}
loss: {type: mse, inputs: [out, y]}
train: {epochs: 1, optimizer: {type: sgd, lr: 0.01}}
"""


def test_the_published_block_expands_and_trains(tmp_path):
    """A spec uses the package's `gained_dense` block as a node type, like a layer."""
    path = tmp_path / "block.yaml"
    path.write_text(BLOCK_SPEC, encoding="utf-8")
    spec = graphnet.load_spec(path)
    assert [n.name for n in spec.nodes] == [
        "body.1.fc",
        "body.1.gain",
        "body.2.fc",
        "body.2.gain",
        "out",
    ]
    assert spec.nodes[1].options_model.start == 0.5
    history = graphnet.train(spec, tmp_path / "run")
    assert math.isfinite(history[-1]["loss"])
