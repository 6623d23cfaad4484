"""Engine hints are public and optional: a third-party plugin that uses them trains to the same
bits as one that ignores them.

The hints (the plugin guide's "Engine hints"): `input_grads_needed` and `grad_out` for layers
(and `input_grads_needed` for losses), and the `flat` view of an optimizer's `params` and
`grads`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

import graphnet
from graphnet.registry import get_registry

SPEC = """\
dtype: {dtype}
data: {{source: synthetic, function: product, samples: 200}}
inputs: {{x: {{shape: [2]}}, y: {{shape: [1]}}}}
nodes:
  - {{name: wx, type: {layer}, inputs: [x]}}
  - {{name: hidden, type: dense, inputs: [wx], units: 5}}
  - {{name: act, type: tanh, inputs: [hidden]}}
  - {{name: wa, type: {layer}, inputs: [act]}}
  - {{name: out, type: dense, inputs: [wa], units: 1}}
loss: {{type: mse, inputs: [out, y]}}
train: {{epochs: 3, batch_size: 50, optimizer: {{type: {optimizer}, lr: 0.05}}}}
"""


class Weigh(graphnet.Layer):
    """y = w·x elementwise, one weight per feature; ignores every hint."""

    type = "test_weigh"

    def init_params(self, input_shapes: Any, rng: np.random.Generator) -> dict[str, Any]:
        return {"w": rng.uniform(0.5, 1.5, input_shapes[0])}

    def forward(self, params: Any, inputs: Any, training: bool) -> tuple[Any, Any]:
        (x,) = inputs
        return x * params["w"], x

    def backward(self, params: Any, cache: Any, grad: Any) -> tuple[list[Any], dict[str, Any]]:
        return [grad * params["w"]], {"w": np.sum(grad * cache, axis=0)}


class HintedWeigh(Weigh):
    """The same layer, skipping input gradients nobody needs and writing into `grad_out`."""

    type = "test_hinted_weigh"
    seen: ClassVar[list[tuple[Any, bool]]] = []  # (input_grads_needed, wrote into grad_out)

    def backward(self, params: Any, cache: Any, grad: Any) -> tuple[list[Any], dict[str, Any]]:
        out = self.grad_out or {}
        dw = np.sum(grad * cache, axis=0, out=out.get("w"))
        needed = self.input_grads_needed
        dx = grad * params["w"] if needed is None or needed[0] else None
        self.seen.append((needed, out.get("w") is dw))
        return [dx], {"w": dw}


class Momentum(graphnet.Optimizer):
    """v = 0.9·v + g; p -= lr·v, one array at a time (ignores `flat`)."""

    type = "test_momentum"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        lr: float = 0.01

    def init_state(self, params: Any) -> dict[str, Any]:
        return {f"{key}/v": np.zeros_like(p) for key, p in params.items()}

    def step(self, params: Any, grads: Any, state: dict[str, Any]) -> None:
        for key, p in params.items():
            v = state[f"{key}/v"]
            v *= 0.9
            v += grads[key]
            p -= self.options.lr * v


class FlatMomentum(Momentum):
    """The same update on `params.flat` and `grads.flat`, in one call per step."""

    type = "test_flat_momentum"
    seen: ClassVar[list[bool]] = []  # whether the flat view was there

    def init_state(self, params: Any) -> dict[str, Any]:
        return {"v": np.zeros_like(params.flat)}

    def step(self, params: Any, grads: Any, state: dict[str, Any]) -> None:
        flat, flat_grads = getattr(params, "flat", None), getattr(grads, "flat", None)
        self.seen.append(flat is not None and flat_grads is not None)
        v = state["v"]
        v *= 0.9
        v += flat_grads
        flat -= self.options.lr * v


class HintPlugins:
    @graphnet.hookimpl
    def graphnet_layers(self) -> list[type[graphnet.Layer]]:
        return [Weigh, HintedWeigh]

    @graphnet.hookimpl
    def graphnet_optimizers(self) -> list[type[graphnet.Optimizer]]:
        return [Momentum, FlatMomentum]


@pytest.fixture(autouse=True)
def hint_plugins() -> Iterator[None]:
    """The test plugins, registered for the test and unregistered afterwards."""
    registry = get_registry()
    registry.register(HintPlugins(), "test-hints", "graphnet-test-hints")
    HintedWeigh.seen.clear()
    FlatMomentum.seen.clear()
    yield
    registry.unregister("test-hints")


def weights(tmp_path: Path, name: str, **fields: str) -> dict[str, bytes]:
    """Train SPEC filled with ``fields``; the bytes of each array of its weights.npz."""
    spec_path = tmp_path / f"{name}.yaml"
    spec_path.write_text(SPEC.format(**fields), encoding="utf-8")
    graphnet.train(graphnet.load_spec(spec_path), out_dir=tmp_path / name)
    with np.load(tmp_path / name / "weights.npz") as arrays:
        return {key: arrays[key].tobytes() for key in arrays.files}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_layer_using_its_hints_trains_to_the_same_bits(tmp_path: Path, dtype: str) -> None:
    """A layer that skips unneeded input gradients and writes into `grad_out` gives the same
    weights, bit for bit, as the same layer ignoring both; the hints were really given."""
    plain = weights(tmp_path, "plain", dtype=dtype, layer="test_weigh", optimizer="sgd")
    hinted = weights(tmp_path, "hinted", dtype=dtype, layer="test_hinted_weigh", optimizer="sgd")
    assert hinted == plain
    needed = {hint for hint, _ in HintedWeigh.seen}
    assert needed == {(False,), (True,)}  # wx reads the graph input x, wa a node's output
    assert all(wrote for _, wrote in HintedWeigh.seen)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_an_optimizer_using_flat_gives_the_same_bits(tmp_path: Path, dtype: str) -> None:
    """An optimizer updating `params.flat` from `grads.flat` gives the same weights, bit for
    bit, as one iterating the dict of arrays."""
    plain = weights(tmp_path, "plain", dtype=dtype, layer="test_weigh", optimizer="test_momentum")
    flat = weights(
        tmp_path, "flat", dtype=dtype, layer="test_weigh", optimizer="test_flat_momentum"
    )
    assert flat == plain
    assert FlatMomentum.seen and all(FlatMomentum.seen)
