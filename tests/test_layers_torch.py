"""The layers of issue 12 against PyTorch (when it is installed): forward, input gradients and
parameter gradients of each, and batchnorm's running statistics over several training steps,
to 1e-9 in float64. torch works in NCHW; graphnet's images are channels last, so the arrays are
transposed on the way.

PyTorch is not a dependency of graphnet; these tests are skipped where it is not installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from graphnet.registry import get_registry

torch = pytest.importorskip("torch")
F = torch.nn.functional
TOL = {"rtol": 1e-9, "atol": 1e-11}


def nchw(a: np.ndarray) -> Any:
    return torch.tensor(a.transpose(0, 3, 1, 2).copy(), requires_grad=True)


def nhwc(t: Any) -> np.ndarray:
    return t.detach().numpy().transpose(0, 2, 3, 1)


def compare(
    name: str,
    options: dict[str, Any],
    inputs: list[np.ndarray],
    params: dict[str, np.ndarray],
    reference: Callable[..., Any],
    images: bool = False,
    param_to_torch: Callable[[str, np.ndarray], Any] | None = None,
    param_from_torch: Callable[[str, Any], np.ndarray] | None = None,
) -> None:
    """graphnet's layer and ``reference(inputs, params)`` (torch) agree on the output and on the
    gradients of sum(output · G) for a random G. With ``images``, 4-D arrays are NHWC here and
    NCHW in torch."""

    def to_torch(a: np.ndarray) -> Any:
        return nchw(a) if images and a.ndim == 4 else torch.tensor(a, requires_grad=True)

    def from_torch(t: Any) -> np.ndarray:
        return nhwc(t) if images and t.ndim == 4 else t.detach().numpy()

    layer = get_registry().entries("layer")[name].cls(options)
    out, cache = layer.forward(params, inputs, True)
    G = np.random.default_rng(9).standard_normal(out.shape)
    in_grads, p_grads = layer.backward(params, cache, G)
    t_inputs = [to_torch(x) for x in inputs]
    t_params = {
        k: (param_to_torch(k, v) if param_to_torch else torch.tensor(v, requires_grad=True))
        for k, v in params.items()
    }
    t_out = reference(t_inputs, t_params)
    assert from_torch(t_out).shape == out.shape
    np.testing.assert_allclose(out, from_torch(t_out), **TOL, err_msg=f"{name} forward")
    t_out.backward(to_torch(G).detach())
    for i, (g, t) in enumerate(zip(in_grads, t_inputs, strict=True)):
        if g is not None:
            np.testing.assert_allclose(g, from_torch(t.grad), **TOL, err_msg=f"{name} input {i}")
    for k, g in p_grads.items():
        expected = t_params[k].grad
        expected = param_from_torch(k, expected) if param_from_torch else expected.numpy()
        np.testing.assert_allclose(g, expected, **TOL, err_msg=f"{name} parameter {k}")


def conv_params(k: str, v: np.ndarray) -> Any:  # W [kh, kw, C, F] -> [F, C, kh, kw]
    return torch.tensor(v.transpose(3, 2, 0, 1).copy() if k == "W" else v, requires_grad=True)


def conv_grads(k: str, t: Any) -> np.ndarray:
    return t.numpy().transpose(2, 3, 1, 0) if k == "W" else t.numpy()


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize(
    ("options", "shape", "torch_padding"),
    [
        ({"filters": 4, "kernel": 3}, (7, 6, 3), "valid"),
        ({"filters": 4, "kernel": 3, "padding": "same"}, (7, 6, 3), "same"),
        (
            {"filters": 2, "kernel": [2, 4], "padding": "same"},
            (5, 6, 2),
            "same",
        ),  # even: extra on the bottom/right
        ({"filters": 3, "kernel": [3, 2], "stride": [2, 3]}, (9, 8, 2), "valid"),
        ({"filters": 3, "kernel": 3, "stride": 2, "padding": "same"}, (8, 7, 2), (0, 1, 1, 1)),
        ({"filters": 2, "kernel": 1, "bias": False}, (3, 4, 5), "valid"),
    ],
)
def test_conv2d_matches_torch(
    options: dict[str, Any], shape: tuple[int, ...], torch_padding: Any
) -> None:
    """conv2d equals torch.nn.functional.conv2d (weights transposed to [F, C, kh, kw]); for a
    stride above 1, same is TensorFlow's SAME: torch on an explicitly padded input."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, *shape))
    layer = get_registry().entries("layer")["conv2d"].cls(options)
    params = {
        k: v + rng.standard_normal(v.shape) for k, v in layer.init_params([shape], rng).items()
    }
    stride = options.get("stride", 1)

    def reference(xs: list[Any], p: dict[str, Any]) -> Any:
        x = xs[0]
        if isinstance(torch_padding, tuple):  # (top, bottom, left, right)
            top, bottom, left, right = torch_padding
            return F.conv2d(F.pad(x, (left, right, top, bottom)), p["W"], p.get("b"), stride=stride)
        return F.conv2d(x, p["W"], p.get("b"), stride=stride, padding=torch_padding)

    compare("conv2d", options, [X], params, reference, True, conv_params, conv_grads)


@pytest.mark.parametrize(
    ("name", "options", "shape", "reference"),
    [
        ("maxpool2d", {}, (6, 7, 3), lambda x: F.max_pool2d(x, 2)),
        ("maxpool2d", {"pool": 3, "stride": 1}, (5, 6, 2), lambda x: F.max_pool2d(x, 3, 1)),
        (
            "maxpool2d",
            {"pool": [2, 3], "stride": [1, 2]},
            (5, 8, 2),
            lambda x: F.max_pool2d(x, (2, 3), (1, 2)),
        ),
        ("avgpool2d", {}, (6, 7, 3), lambda x: F.avg_pool2d(x, 2)),
        (
            "avgpool2d",
            {"pool": 3, "stride": [1, 2]},
            (5, 8, 2),
            lambda x: F.avg_pool2d(x, 3, (1, 2)),
        ),
    ],
)
def test_pooling_matches_torch(
    name: str, options: dict[str, Any], shape: tuple[int, ...], reference: Any
) -> None:
    """maxpool2d and avgpool2d equal torch's max_pool2d and avg_pool2d, overlapping windows too."""
    X = np.random.default_rng(1).standard_normal((3, *shape))
    compare(name, options, [X], {}, lambda xs, p: reference(xs[0]), True)


@pytest.mark.parametrize(("pool", "stride"), [(2, None), (3, 1)])
def test_maxpool_ties_follow_torch(pool: int, stride: int | None) -> None:
    """On an input full of ties (relu zeros and repeated values) the gradient goes where
    torch's goes, for tiling and for overlapping windows."""
    X = np.random.default_rng(2).integers(-1, 3, (2, 7, 6, 3)).clip(0).astype(float)
    options = {"pool": pool} if stride is None else {"pool": pool, "stride": stride}
    compare(
        "maxpool2d",
        options,
        [X],
        {},
        lambda xs, p: F.max_pool2d(xs[0], pool, stride),
        True,
    )


def test_global_avgpool_matches_torch() -> None:
    """global_avgpool2d equals adaptive_avg_pool2d to 1x1, flattened."""
    X = np.random.default_rng(3).standard_normal((3, 4, 5, 2))
    compare(
        "global_avgpool2d",
        {},
        [X],
        {},
        lambda xs, p: F.adaptive_avg_pool2d(xs[0], 1).flatten(1),
        True,
    )


def test_flatten_of_channels_last_matches_torch_on_nhwc() -> None:
    """flatten equals torch's flatten of the same channels-last array."""
    X = np.random.default_rng(4).standard_normal((3, 4, 5, 2))
    compare("flatten", {}, [X], {}, lambda xs, p: xs[0].flatten(1))
    compare("reshape", {"shape": [10, -1]}, [X], {}, lambda xs, p: xs[0].reshape(3, 10, -1))


@pytest.mark.parametrize("shape", [(5,), (4, 3, 2)])
def test_batchnorm_matches_torch_and_its_running_statistics(shape: tuple[int, ...]) -> None:
    """batchnorm equals torch.nn.BatchNorm1d ([C]) / BatchNorm2d ([H, W, C]): forward and every
    gradient while training, the running mean and variance after five training steps, and the
    output outside training."""
    rng = np.random.default_rng(5)
    C = shape[-1]
    layer = get_registry().entries("layer")["batchnorm"].cls({"momentum": 0.3, "eps": 1e-4})
    params = layer.init_params([shape], rng)
    params["gamma"] += rng.standard_normal(C)
    params["beta"] += rng.standard_normal(C)
    module = (torch.nn.BatchNorm1d if len(shape) == 1 else torch.nn.BatchNorm2d)(
        C, momentum=0.3, eps=1e-4, dtype=torch.float64
    )
    with torch.no_grad():
        module.weight.copy_(torch.tensor(params["gamma"]))
        module.bias.copy_(torch.tensor(params["beta"]))
    to_torch, from_torch = (
        (nchw, nhwc)
        if len(shape) == 3
        else (lambda a: torch.tensor(a, requires_grad=True), lambda t: t.detach().numpy())
    )
    for step in range(5):
        X = 2 + 3 * rng.standard_normal((6, *shape))
        out, cache = layer.forward(params, [X], True)
        G = rng.standard_normal(out.shape)
        (dX,), grads = layer.backward(params, cache, G)
        module.zero_grad()
        x = to_torch(X)
        y = module(x)
        y.backward(to_torch(G).detach())
        np.testing.assert_allclose(out, from_torch(y), **TOL, err_msg=f"step {step} forward")
        np.testing.assert_allclose(dX, from_torch(x.grad), **TOL, err_msg=f"step {step} dX")
        np.testing.assert_allclose(grads["gamma"], module.weight.grad.numpy(), **TOL)
        np.testing.assert_allclose(grads["beta"], module.bias.grad.numpy(), **TOL)
    np.testing.assert_allclose(params["running_mean"], module.running_mean.numpy(), **TOL)
    np.testing.assert_allclose(params["running_var"], module.running_var.numpy(), **TOL)
    module.eval()
    X = rng.standard_normal((4, *shape))
    out, _ = layer.forward(params, [X], False)
    np.testing.assert_allclose(out, from_torch(module(to_torch(X))), **TOL, err_msg="eval")


def test_layernorm_matches_torch() -> None:
    """layernorm equals torch.nn.functional.layer_norm over the last axis."""
    rng = np.random.default_rng(6)
    X = rng.standard_normal((3, 2, 5)) * 4 + 1
    params = {"gamma": rng.standard_normal(5), "beta": rng.standard_normal(5)}
    compare(
        "layernorm",
        {"eps": 1e-5},
        [X],
        params,
        lambda xs, p: F.layer_norm(xs[0], (5,), p["gamma"], p["beta"], eps=1e-5),
    )


def test_embedding_matches_torch() -> None:
    """embedding equals torch.nn.functional.embedding, repeated ids summing their gradients."""
    rng = np.random.default_rng(7)
    ids = rng.integers(0, 6, (4, 5)).astype(float)
    E = rng.standard_normal((6, 3))
    compare(
        "embedding",
        {"vocab": 6, "units": 3},
        [ids],
        {"E": E},
        lambda xs, p: F.embedding(xs[0].detach().long(), p["E"]),
    )


@pytest.mark.parametrize(
    ("name", "options", "reference"),
    [
        ("leaky_relu", {}, lambda x: F.leaky_relu(x, 0.01)),
        ("leaky_relu", {"slope": 0.3}, lambda x: F.leaky_relu(x, 0.3)),
        ("gelu", {}, lambda x: F.gelu(x, approximate="tanh")),
    ],
)
def test_activations_match_torch(name: str, options: dict[str, Any], reference: Any) -> None:
    """leaky_relu and gelu (tanh form) equal torch's, zero included."""
    X = np.random.default_rng(8).standard_normal((4, 6)) * 3
    X[0, 0] = 0.0
    compare(name, options, [X], {}, lambda xs, p: reference(xs[0]))


def test_multiply_matches_torch() -> None:
    """multiply of three inputs equals torch's product, every input's gradient included."""
    rng = np.random.default_rng(9)
    xs = [rng.standard_normal((3, 4)) for _ in range(3)]
    compare("multiply", {}, xs, {}, lambda t, p: t[0] * t[1] * t[2])
