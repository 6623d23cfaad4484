"""embedding, flatten, reshape, leaky_relu, gelu and multiply against their definitions, with
the shape and data errors a spec author sees."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import graphnet
from graphnet.registry import get_registry


def layer(name: str, **options: Any) -> Any:
    return get_registry().entries("layer")[name].cls(options)


def test_embedding_looks_up_rows_and_sums_their_gradients() -> None:
    """ids [T] -> rows of E, [T, units]; an id used twice gets both gradients; the ids get none."""
    emb = layer("embedding", vocab=4, units=2)
    E = np.arange(8.0).reshape(4, 2)
    ids = np.array([[3.0, 1.0, 3.0]])
    out, cache = emb.forward({"E": E}, [ids], True)
    np.testing.assert_array_equal(out[0], E[[3, 1, 3]])
    (d_ids,), grads = emb.backward({"E": E}, cache, np.ones((1, 3, 2)))
    assert d_ids is None
    np.testing.assert_array_equal(grads["E"], [[0, 0], [1, 1], [0, 0], [2, 2]])


def test_embedding_starts_from_a_standard_normal() -> None:
    """E is drawn N(0, 1) (as torch.nn.Embedding), shape [vocab, units]."""
    E = layer("embedding", vocab=500, units=40).init_params([(3,)], np.random.default_rng(0))["E"]
    assert E.shape == (500, 40)
    assert abs(E.mean()) < 0.01 and abs(E.std() - 1) < 0.01


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (
            [[0, 1], [2, 7]],
            r"sample 1 of the batch holds the id 7\.0 \(at position \[1\]\).*0 to 4",
        ),
        ([[0, 1.5]], r"sample 0 of the batch holds the id 1\.5"),
        ([[1, 1], [1, 1], [-1, 0]], r"sample 2 of the batch holds the id -1\.0"),
        ([[np.nan, 0]], r"sample 0 of the batch holds the id nan"),
    ],
)
def test_embedding_refuses_ids_that_are_no_row(ids: Any, message: str) -> None:
    """An id that is not a whole number in [0, vocab) is a DataError naming the sample and id."""
    emb = layer("embedding", vocab=5, units=2)
    with pytest.raises(graphnet.DataError, match=message):
        emb.forward({"E": np.zeros((5, 2))}, [np.array(ids, float)], True)


def test_embedding_needs_a_sequence_of_ids() -> None:
    """embedding takes per-sample ids of shape [T]; [T, 2] is a ShapeError naming both shapes."""
    with pytest.raises(
        graphnet.ShapeError, match=r"shape \[T\].*got \[4, 2\]; the output is \[T, 3\]"
    ):
        layer("embedding", vocab=5, units=3).output_shape([(4, 2)])


def test_flatten_and_reshape_keep_row_major_order_per_sample() -> None:
    """flatten gives each sample's values in C order; reshape [-1, 2] resolves the -1; the batch
    axis is kept, and the gradient goes back in the input's shape."""
    X = np.arange(24.0).reshape(2, 3, 2, 2)
    flat, cache = layer("flatten").forward({}, [X], True)
    np.testing.assert_array_equal(flat, X.reshape(2, 12))
    assert layer("flatten").backward({}, cache, flat)[0][0].shape == X.shape
    reshape = layer("reshape", shape=[-1, 2])
    assert tuple(reshape.output_shape([(3, 2, 2)])) == (6, 2)
    out, _ = reshape.forward({}, [X], True)
    np.testing.assert_array_equal(out, X.reshape(2, 6, 2))


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ([4, 4], r"cannot reshape \[3, 2, 2\] \(12 values\) to \[4, 4\] \(16 values\)"),
        (
            [5, -1],
            r"cannot reshape \[3, 2, 2\] \(12 values\) to \[5, -1\] \(a multiple of 5 values\)",
        ),
        ([-1, -1], r"\[-1, -1\] is no shape"),
        ([0, 12], r"\[0, 12\] is no shape"),
    ],
)
def test_reshape_errors_name_both_shapes(shape: list[int], message: str) -> None:
    """A reshape whose sizes don't multiply out is a ShapeError naming both shapes."""
    with pytest.raises(graphnet.ShapeError, match=message):
        layer("reshape", shape=shape).output_shape([(3, 2, 2)])


def test_leaky_relu_and_gelu_by_their_formulas() -> None:
    """leaky_relu is x or slope·x; gelu is 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))."""
    X = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    out, _ = layer("leaky_relu").forward({}, [X], True)
    np.testing.assert_allclose(out, np.where(X > 0, X, 0.01 * X))
    out, _ = layer("leaky_relu", slope=0.2).forward({}, [X], True)
    np.testing.assert_allclose(out, np.where(X > 0, X, 0.2 * X))
    out, _ = layer("gelu").forward({}, [X], True)
    expected = 0.5 * X * (1 + np.tanh(np.sqrt(2 / np.pi) * (X + 0.044715 * X**3)))
    np.testing.assert_allclose(out, expected, rtol=1e-15)


def test_multiply_takes_the_product_and_its_gradients() -> None:
    """multiply of three inputs: the product; each input's gradient is the product of the
    others (zeros included, no division)."""
    a, b, c = np.array([[2.0, 0.0]]), np.array([[3.0, 5.0]]), np.array([[4.0, 7.0]])
    mul = layer("multiply")
    out, cache = mul.forward({}, [a, b, c], True)
    np.testing.assert_array_equal(out, [[24, 0]])
    grads, _ = mul.backward({}, cache, np.ones((1, 2)))
    np.testing.assert_array_equal(grads[0], [[12, 35]])
    np.testing.assert_array_equal(grads[1], [[8, 0]])
    np.testing.assert_array_equal(grads[2], [[6, 0]])
    with pytest.raises(
        graphnet.ShapeError, match=r"input 0 has shape \[2\] but input 1 has shape \[3\]"
    ):
        mul.output_shape([(2,), (3,)])
    with pytest.raises(graphnet.ShapeError, match="two or more inputs"):
        mul.output_shape([(2,)])
