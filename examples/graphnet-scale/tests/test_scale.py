"""graphnet-scale's own tests: the checks graphnet gives every plugin author, and a real run."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import graphnet_scale
import numpy as np
import pydantic
import pytest
from graphnet_scale import PseudoHuber, Scale

import graphnet
from graphnet.registry import Registry
from graphnet.testing import check_layer, check_loss

SPEC = Path(__file__).resolve().parents[1] / "specs" / "scaled.yaml"


@pytest.mark.parametrize("start", [1.0, -2.5])
@pytest.mark.parametrize("shape", [(), (3,), (2, 4)])
def test_scale_passes_check_layer(shape, start):
    """Shapes, gradients of x and a against finite differences, float32 kept, inputs untouched."""
    worst = check_layer(Scale, {"start": start}, [shape])
    assert worst < 1e-6


def test_scale_multiplies_by_a():
    """The output is a·x, and a starts at the `start` option."""
    layer = Scale({"start": 3.0})
    params = layer.init_params([(2,)], np.random.default_rng(0))
    assert params["a"].tolist() == [3.0]
    y, _ = layer.forward(params, [np.array([[1.0, -2.0]])], training=True)
    assert y.tolist() == [[3.0, -6.0]]


@pytest.mark.parametrize("delta", [0.3, 1.0, 5.0])
@pytest.mark.parametrize("shape", [(1,), (4,), (2, 3)])
def test_pseudo_huber_passes_check_loss(shape, delta):
    """Gradients of prediction and target against finite differences, float32 kept."""
    worst = check_loss(PseudoHuber, {"delta": delta}, [shape, shape], batch=5)
    assert worst < 1e-6


def test_pseudo_huber_matches_its_formula():
    """delta²·(√(1 + (r/delta)²) - 1), averaged over every element."""
    prediction = np.array([[0.5], [-0.2], [3.0], [-4.0]])
    target = np.zeros((4, 1))
    expected = np.mean(4.0 * (np.sqrt(1 + (prediction / 2.0) ** 2) - 1))
    value, _ = PseudoHuber({"delta": 2.0}).forward([prediction, target])
    assert value == pytest.approx(expected, rel=1e-12)
    check_loss(PseudoHuber, {"delta": 2.0}, [(1,), (1,)], inputs=[prediction, target])


def test_pseudo_huber_is_quadratic_near_zero_and_linear_far_out():
    """About ½r² for |r| much below delta, about delta·(|r| - delta) far beyond it."""
    loss = PseudoHuber({"delta": 1.0})
    small, _ = loss.forward([np.array([[1e-3]]), np.zeros((1, 1))])
    large, _ = loss.forward([np.array([[1e4]]), np.zeros((1, 1))])
    assert small == pytest.approx(0.5e-6, rel=1e-5)
    assert large == pytest.approx(1e4 - 1.0, rel=1e-6)


class WrongScale(Scale):
    """Scale whose gradient of a forgets the incoming gradient: a bug check_layer must catch."""

    def backward(self, params, cache, grad):
        X = cache
        return [params["a"] * grad], {"a": np.sum(X, keepdims=True).reshape(1)}


class WrongScaleInput(Scale):
    """Scale whose gradient of x forgets to multiply by a."""

    def backward(self, params, cache, grad):
        X = cache
        return [grad.copy()], {"a": np.sum(grad * X, keepdims=True).reshape(1)}


class SummedPseudoHuber(PseudoHuber):
    """PseudoHuber whose gradient is of the sum, not the mean: off by the number of elements."""

    def backward(self, cache):
        R, S = cache
        dP = R / S
        return [dP, -dP]


class WrongTargetPseudoHuber(PseudoHuber):
    """PseudoHuber whose target gradient has the wrong sign."""

    def backward(self, cache):
        d_prediction, _ = super().backward(cache)
        return [d_prediction, d_prediction]


@pytest.mark.parametrize(
    ("layer_class", "message"),
    [(WrongScale, "scale parameter 'a'"), (WrongScaleInput, "scale input 0")],
)
def test_check_layer_catches_a_wrong_gradient(layer_class, message):
    """A wrong backward fails check_layer, naming what is wrong."""
    with pytest.raises(AssertionError, match=message):
        check_layer(layer_class, {"start": 2.0}, [(3,)])


@pytest.mark.parametrize(
    ("loss_class", "message"),
    [
        (SummedPseudoHuber, "pseudo_huber input 0"),
        (WrongTargetPseudoHuber, "pseudo_huber input 1"),
    ],
)
def test_check_loss_catches_a_wrong_gradient(loss_class, message):
    """A wrong backward fails check_loss, naming the input whose gradient is wrong."""
    with pytest.raises(AssertionError, match=message):
        check_loss(loss_class, {}, [(2,), (2,)])


@pytest.mark.parametrize(
    ("plugin_class", "options"),
    [
        (Scale, {"sart": 2.0}),  # a misspelt option
        (Scale, {"start": "big"}),
        (PseudoHuber, {"delta": 0.0}),  # delta must be positive
        (PseudoHuber, {"delta": 1.0, "reduction": "sum"}),
    ],
)
def test_bad_options_are_refused(plugin_class, options):
    """Unknown options and bad values are errors, not silently ignored."""
    with pytest.raises(pydantic.ValidationError):
        plugin_class(options)


def test_every_option_is_described():
    """`graphnet schema` and `graphnet plugins` can show a description of every option."""
    for plugin_class in (Scale, PseudoHuber):
        for name, field in plugin_class.Options.model_fields.items():
            assert field.description, f"{plugin_class.type}.{name} has no description"


def test_hooks_register_the_layer_and_the_loss():
    """The module's hook implementations give graphnet `scale` and `pseudo_huber`."""
    registry = Registry()
    registry.register(graphnet_scale, "graphnet-scale")
    assert registry.get("layer", "scale") is Scale
    assert registry.get("loss", "Pseudo_Huber") is PseudoHuber  # types are case-insensitive
    assert registry.entries("layer")["scale"].package == "graphnet-scale"


def _plugins() -> tuple[str, ...]:
    """Nothing when the package is installed (graphnet finds its entry point), else the module."""
    installed = any(ep.value == "graphnet_scale" for ep in entry_points(group="graphnet"))
    return () if installed else ("graphnet_scale",)


def test_the_example_spec_trains(tmp_path):
    """specs/scaled.yaml validates and trains; the run folder has the learnt scalar a."""
    spec = graphnet.load_spec(SPEC, overrides={"train.epochs": 5}, plugins=_plugins())
    history = graphnet.train(spec, out_dir=tmp_path / "run")
    assert [record["epoch"] for record in history] == [1, 2, 3, 4, 5]
    assert history[-1]["loss"] < history[0]["loss"]
    with np.load(tmp_path / "run" / "weights.npz") as weights:
        assert weights["scaled/a"].shape == (1,)
        assert weights["scaled/a"][0] != 10.0  # it started at 10 and was trained
