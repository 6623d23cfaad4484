"""conv2d, maxpool2d, avgpool2d and global_avgpool2d against answers worked out by hand, their
output shapes (valid, same, strides) and the shape errors a spec author sees."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

import graphnet
from graphnet.registry import get_registry
from graphnet.testing import check_layer


def layer(name: str, **options: Any) -> Any:
    return get_registry().entries("layer")[name].cls(options)


def run(name: str, X: Any, params: dict[str, Any] | None = None, **options: Any) -> np.ndarray:
    out, _ = layer(name, **options).forward(params or {}, [np.asarray(X, float)], True)
    return out


def test_conv2d_with_a_known_kernel() -> None:
    """A 2x2 kernel of ones plus a bias of 10 sums each 2x2 window of a 3x3 image (valid)."""
    image = np.arange(9.0).reshape(1, 3, 3, 1)
    W = np.ones((2, 2, 1, 1))
    out = run("conv2d", image, {"W": W, "b": np.array([10.0])}, filters=1, kernel=2)
    expected = [[0 + 1 + 3 + 4, 1 + 2 + 4 + 5], [3 + 4 + 6 + 7, 4 + 5 + 7 + 8]]
    np.testing.assert_array_equal(out[0, :, :, 0], np.array(expected) + 10)


def test_conv2d_is_cross_correlation_over_channels() -> None:
    """Output channel f at (i, j) is Σ W[di, dj, c, f]·X[i+di, j+dj, c]: no kernel flip, channels
    last, the weight laid out [kh, kw, C, filters]."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2, 4, 5, 3))
    W = rng.standard_normal((2, 3, 3, 4))
    out = run("conv2d", X, {"W": W}, filters=4, kernel=[2, 3], bias=False)
    expected = np.zeros((2, 3, 3, 4))
    for i in range(3):
        for j in range(3):
            expected[:, i, j] = np.einsum("nabc,abcf->nf", X[:, i : i + 2, j : j + 3], W)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_conv2d_same_padding_keeps_the_size_and_pads_with_zeros() -> None:
    """padding same with stride 1 keeps H and W; a 3x3 kernel of ones counts each pixel's
    neighbours inside the image (corners 4, edges 6, inside 9)."""
    out = run(
        "conv2d",
        np.ones((1, 4, 4, 1)),
        {"W": np.ones((3, 3, 1, 1))},
        filters=1,
        kernel=3,
        padding="same",
        bias=False,
    )
    assert out.shape == (1, 4, 4, 1)
    np.testing.assert_array_equal(
        out[0, :, :, 0], [[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]]
    )


@pytest.mark.parametrize(
    ("options", "shape", "expected"),
    [
        ({"kernel": 3}, (8, 8, 1), (6, 6, 5)),
        ({"kernel": 3, "padding": "same"}, (8, 7, 2), (8, 7, 5)),
        ({"kernel": 3, "stride": 2}, (8, 7, 1), (3, 3, 5)),
        ({"kernel": [3, 1], "stride": [2, 1], "padding": "same"}, (7, 4, 1), (4, 4, 5)),
        ({"kernel": 2, "stride": 3, "padding": "same"}, (8, 9, 1), (3, 3, 5)),
    ],
)
def test_conv2d_output_shapes(
    options: dict[str, Any], shape: tuple[int, ...], expected: tuple[int, ...]
) -> None:
    """valid gives (H - k) // s + 1; same gives ceil(H / s) (TensorFlow's SAME for stride > 1)."""
    assert tuple(layer("conv2d", filters=5, **options).output_shape([shape])) == expected


def test_conv2d_same_with_a_stride_pads_as_tensorflow() -> None:
    """Stride 2, kernel 3, same, on H = 4: the output is 2 and the one pixel of padding goes to
    the bottom (TensorFlow's SAME), so the windows start at rows 0 and 2."""
    X = np.arange(16.0).reshape(1, 4, 4, 1)
    W = np.zeros((3, 3, 1, 1))
    W[0, 0] = 1  # picks the window's top-left pixel
    out = run("conv2d", X, {"W": W}, filters=1, kernel=3, stride=2, padding="same", bias=False)
    np.testing.assert_array_equal(out[0, :, :, 0], [[0, 2], [8, 10]])


def test_conv2d_initialisers_use_the_kernel_fans() -> None:
    """glorot_uniform draws W within ±√(6/(kh·kw·C + kh·kw·filters)), he_uniform ±√(6/(kh·kw·C));
    b starts at zero."""
    rng = np.random.default_rng(0)
    params = layer("conv2d", filters=8, kernel=3).init_params([(5, 5, 4)], rng)
    assert params["W"].shape == (3, 3, 4, 8) and not params["b"].any()
    limit = np.sqrt(6 / (36 + 72))
    assert np.abs(params["W"]).max() <= limit and np.abs(params["W"]).max() > 0.9 * limit
    he = layer("conv2d", filters=8, kernel=3, init="he_uniform").init_params([(5, 5, 4)], rng)
    assert np.abs(he["W"]).max() <= np.sqrt(6 / 36)
    assert "b" not in layer("conv2d", filters=2, kernel=1, bias=False).init_params([(2, 2, 1)], rng)


def test_maxpool_and_avgpool_by_hand() -> None:
    """2x2 pooling of a 4x4 image: the max and the mean of each of the four blocks; an odd row
    or column at the end is dropped (valid)."""
    X = np.array([[1, 2, 5, 0], [3, 4, 1, 1], [0, 0, 9, 8], [-1, -2, 7, 6]], float)[
        None, :, :, None
    ]
    np.testing.assert_array_equal(run("maxpool2d", X)[0, :, :, 0], [[4, 5], [0, 9]])
    np.testing.assert_array_equal(run("avgpool2d", X)[0, :, :, 0], [[2.5, 1.75], [-0.75, 7.5]])
    odd = np.arange(25.0).reshape(1, 5, 5, 1)
    np.testing.assert_array_equal(run("maxpool2d", odd)[0, :, :, 0], [[6, 8], [16, 18]])


def test_maxpool_gradient_goes_to_the_first_maximum() -> None:
    """The gradient of a window flows to its maximum only; with a tie, to the first one in
    row-major order (as torch)."""
    pool = layer("maxpool2d")
    X = np.array([[1.0, 3.0], [3.0, 0.0]])[None, :, :, None]
    _, cache = pool.forward({}, [X], True)
    (dX,), _ = pool.backward({}, cache, np.array([[[[2.0]]]]))
    np.testing.assert_array_equal(dX[0, :, :, 0], [[0, 2], [0, 0]])


def test_overlapping_pools_add_their_gradients() -> None:
    """Pool 2 with stride 1 over [1, 5, 2]: the 5 is the maximum of both windows and gets both
    gradients."""
    pool = layer("maxpool2d", pool=[1, 2], stride=1)
    out, cache = pool.forward({}, [np.array([1.0, 5.0, 2.0]).reshape(1, 1, 3, 1)], True)
    np.testing.assert_array_equal(out.ravel(), [5, 5])
    (dX,), _ = pool.backward({}, cache, np.array([1.0, 10.0]).reshape(1, 1, 2, 1))
    np.testing.assert_array_equal(dX.ravel(), [0, 11, 0])


def test_global_avgpool_is_the_mean_per_channel() -> None:
    """global_avgpool2d turns [H, W, C] into the mean of each channel, [C]."""
    X = np.random.default_rng(1).standard_normal((3, 4, 5, 2))
    gap = layer("global_avgpool2d")
    assert tuple(gap.output_shape([(4, 5, 2)])) == (2,)
    np.testing.assert_allclose(gap.forward({}, [X], True)[0], X.mean(axis=(1, 2)))


@pytest.mark.parametrize(
    ("name", "options", "shape", "message"),
    [
        (
            "conv2d",
            {"filters": 2, "kernel": 3},
            (8, 8),
            r"needs per-sample inputs of shape \[H, W, C\].*got \[8, 8\]",
        ),
        (
            "conv2d",
            {"filters": 2, "kernel": [3, 5]},
            (4, 4, 1),
            r"kernel \[3, 5\] is larger than the input \[4, 4, 1\]",
        ),
        (
            "maxpool2d",
            {"pool": 3},
            (2, 4, 3),
            r"pool \[3, 3\] is larger than the input \[2, 4, 3\]",
        ),
        (
            "avgpool2d",
            {"pool": [1, 5]},
            (4, 4, 3),
            r"pool \[1, 5\] is larger than the input \[4, 4, 3\]",
        ),
        ("global_avgpool2d", {}, (16,), r"\[H, W, C\].*got \[16\]"),
    ],
)
def test_shape_errors_name_both_shapes(
    name: str, options: dict[str, Any], shape: tuple[int, ...], message: str
) -> None:
    """A 2-D layer on an input that is not [H, W, C], or a window larger than an unpadded input,
    is a ShapeError naming the input's shape and what the layer needs."""
    with pytest.raises(graphnet.ShapeError, match=message):
        layer(name, **options).output_shape([shape])


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("conv2d", {"filters": 1, "kernel": 0}),
        ("conv2d", {"filters": 1, "kernel": [3, 0]}),
        ("conv2d", {"filters": 1, "kernel": [3, 3, 3]}),
        ("conv2d", {"filters": 1, "kernel": 3, "stride": -1}),
        ("maxpool2d", {"pool": 0}),
        ("avgpool2d", {"stride": [2]}),
    ],
)
def test_window_sizes_are_positive_ints_or_pairs(name: str, options: dict[str, Any]) -> None:
    """kernel, pool and stride take a positive int or a pair of them; anything else is refused
    by the options model (a spec error naming the option)."""
    with pytest.raises(ValidationError):
        layer(name, **options)


def test_a_kernel_larger_than_the_input_is_fine_with_same_padding() -> None:
    """padding same pads whatever the kernel needs: a 5x5 kernel on a 3x3 image gives 3x3."""
    assert tuple(
        layer("conv2d", filters=1, kernel=5, padding="same").output_shape([(3, 3, 1)])
    ) == (3, 3, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_keeps_the_dtype_and_its_inputs(dtype: Any) -> None:
    """conv2d computes in the spec's dtype and leaves its input untouched (check_layer runs both
    dtypes; this pins the output and every gradient on a stride-2 same case)."""
    check_layer(
        get_registry().entries("layer")["conv2d"].cls,
        {"filters": 2, "kernel": 3, "stride": 2, "padding": "same"},
        [(6, 5, 2)],
    )
    conv = layer("conv2d", filters=2, kernel=3)
    params = {
        k: v.astype(dtype)
        for k, v in conv.init_params([(4, 4, 1)], np.random.default_rng(0)).items()
    }
    X = np.ones((2, 4, 4, 1), dtype)
    out, cache = conv.forward(params, [X], True)
    (dX,), grads = conv.backward(params, cache, np.ones_like(out))
    assert out.dtype == dX.dtype == grads["W"].dtype == grads["b"].dtype == dtype
