"""The losses huber and l1, and the options class_weights and label_smoothing of cross_entropy
and pos_weight of bce: closed forms, graphnet.testing's checks, option validation and (where
PyTorch is installed) torch.nn's values and gradients."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

import graphnet
from graphnet.registry import get_registry
from graphnet.testing import check_loss


def loss_class(name: str) -> Any:
    return get_registry().entries("loss")[name].cls


def loss(name: str, **options: Any) -> Any:
    return loss_class(name)(options)


def value_and_grads(name: str, inputs: list[Any], **options: Any) -> tuple[float, list[Any]]:
    instance = loss(name, **options)
    value, cache = instance.forward([np.asarray(x, dtype=float) for x in inputs])
    return float(value), list(instance.backward(cache))


# -- closed forms on tiny inputs ------------------------------------------------------------------


def test_huber_is_quadratic_inside_delta_and_linear_outside() -> None:
    """huber(delta=1): ½d² for |d| < 1, |d| - ½ beyond; the gradient is d clipped to ±1, over
    the element count."""
    value, (d_prediction, d_target) = value_and_grads(
        "huber", [[[0.5, 3.0], [-2.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]
    )
    assert value == pytest.approx((0.125 + 2.5 + 1.5 + 0.0) / 4, rel=1e-15)
    np.testing.assert_array_equal(d_prediction, [[0.125, 0.25], [-0.25, 0.0]])
    np.testing.assert_array_equal(d_target, -d_prediction)
    value, _ = value_and_grads("huber", [[[3.0]], [[0.0]]], delta=2.0)
    assert value == pytest.approx(2.0 * (3.0 - 1.0))


def test_l1_is_the_mean_absolute_error_with_sign_gradient() -> None:
    """l1: mean |p - t|; gradient sign(p - t) / n, and 0 where p equals t."""
    value, (d_prediction, d_target) = value_and_grads(
        "l1", [[[1.0, 2.0], [3.0, 4.0]], [[0.0, 2.0], [5.0, 4.5]]]
    )
    assert value == pytest.approx((1.0 + 0.0 + 2.0 + 0.5) / 4)
    np.testing.assert_array_equal(d_prediction, [[0.25, 0.0], [-0.25, -0.25]])
    np.testing.assert_array_equal(d_target, -d_prediction)


def test_class_weights_weight_each_sample_by_its_class() -> None:
    """With class ids, the loss is sum(w[y]·nll) / sum(w[y])."""
    logits = np.log([[0.5, 0.25, 0.25], [0.2, 0.6, 0.2]])  # already normalised
    ids = [[0.0], [1.0]]
    value, _ = value_and_grads("cross_entropy", [logits, ids], class_weights=[3.0, 1.0, 5.0])
    expected = (3.0 * -np.log(0.5) + 1.0 * -np.log(0.6)) / 4.0
    assert value == pytest.approx(expected, rel=1e-14)


def test_class_weights_over_one_hot_labels_divide_by_the_sample_count() -> None:
    """With one-hot (or soft) labels, the loss is sum(w·t·(-log p)) / samples, as torch."""
    logits = np.log([[0.5, 0.25, 0.25], [0.2, 0.6, 0.2]])
    one_hot = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    value, _ = value_and_grads("cross_entropy", [logits, one_hot], class_weights=[3.0, 1.0, 5.0])
    assert value == pytest.approx((3.0 * -np.log(0.5) + 1.0 * -np.log(0.6)) / 2, rel=1e-14)


def test_label_smoothing_mixes_in_the_uniform_distribution() -> None:
    """label_smoothing ε: the target is (1-ε)·one_hot + ε/C, for class ids and one-hot alike."""
    logits = np.log([[0.5, 0.25, 0.25]])
    eps = 0.3
    target = (1 - eps) * np.array([1.0, 0.0, 0.0]) + eps / 3
    expected = -(target * np.log([0.5, 0.25, 0.25])).sum()
    for labels in ([[0.0]], [[1.0, 0.0, 0.0]]):
        value, _ = value_and_grads("cross_entropy", [logits, labels], label_smoothing=eps)
        assert value == pytest.approx(expected, rel=1e-14)


def test_pos_weight_weights_the_positive_term() -> None:
    """bce with pos_weight p: -(p·t·log σ(z) + (1-t)·log(1-σ(z))), one p per output."""
    z = np.array([[0.0, 2.0]])
    t = np.array([[1.0, 0.0]])
    value, _ = value_and_grads("bce", [z, t], pos_weight=[3.0, 10.0])
    expected = (3.0 * np.log(2.0) + np.log1p(np.exp(2.0))) / 2
    assert value == pytest.approx(expected, rel=1e-14)
    value, _ = value_and_grads("bce", [z, t], pos_weight=3.0)
    assert value == pytest.approx(expected, rel=1e-14)


def test_neutral_options_give_the_plain_loss() -> None:
    """Uniform class weights, zero smoothing and a pos_weight of 1 give the loss without them."""
    rng = np.random.default_rng(4)
    logits, ids = rng.standard_normal((6, 3)), rng.integers(0, 3, (6, 1)).astype(float)
    soft = rng.dirichlet(np.ones(3), 6)
    for labels in (ids, soft):
        plain = value_and_grads("cross_entropy", [logits, labels])
        weighted = value_and_grads("cross_entropy", [logits, labels], class_weights=[2.0] * 3)
        expected = plain[0] if labels is ids else 2 * plain[0]
        assert weighted[0] == pytest.approx(expected, rel=1e-14)
    z, t = rng.standard_normal((5, 2)), rng.random((5, 2))
    plain = value_and_grads("bce", [z, t])
    neutral = value_and_grads("bce", [z, t], pos_weight=1.0)
    assert neutral[0] == pytest.approx(plain[0], rel=1e-14)
    np.testing.assert_allclose(neutral[1][0], plain[1][0], rtol=1e-12, atol=1e-15)


def test_defaults_keep_the_plain_paths() -> None:
    """Options left at their defaults give the bits of the loss without options."""
    rng = np.random.default_rng(8)
    logits, ids = rng.standard_normal((6, 3)), rng.integers(0, 3, (6, 1)).astype(float)
    a = value_and_grads("cross_entropy", [logits, ids])
    b = value_and_grads("cross_entropy", [logits, ids], class_weights=None, label_smoothing=0.0)
    assert a[0] == b[0] and np.array_equal(a[1][0], b[1][0])


# -- graphnet.testing.check_loss ------------------------------------------------------------------

_rng = np.random.default_rng(21)
_IDS = [[0], [3], [1], [2], [3]]
CHECKS: list[tuple[str, dict[str, Any], list[tuple[int, ...]], list[Any] | None]] = [
    ("huber", {}, [(3,), (3,)], None),
    ("huber", {"delta": 0.3}, [(2, 2), (2, 2)], None),
    ("l1", {}, [(4,), (4,)], None),
    ("cross_entropy", {"class_weights": [0.5, 2.0, 1.0, 0.1]}, [(4,), (1,)], None),
    ("cross_entropy", {"label_smoothing": 0.2}, [(4,), (1,)], None),
    (
        "cross_entropy",
        {"class_weights": [0.5, 2.0, 1.0, 0.0], "label_smoothing": 0.1},
        [(4,), (1,)],
        None,
    ),
    ("cross_entropy", {"class_weights": [0.5, 2.0, 1.0]}, [(3,), (3,)], None),
    ("cross_entropy", {"label_smoothing": 0.4}, [(3,), (3,)], None),
    (
        "cross_entropy",
        {"class_weights": [3.0, 1.0, 0.5], "label_smoothing": 1.0},
        [(3,), (3,)],
        None,
    ),
    ("bce", {"pos_weight": 2.5}, [(3,), (3,)], None),
    ("bce", {"pos_weight": [0.5, 3.0, 0.0]}, [(3,), (3,)], None),
]


@pytest.mark.parametrize(("name", "options", "shapes", "inputs"), CHECKS)
def test_check_loss_passes(
    name: str, options: dict[str, Any], shapes: list[Any], inputs: list[Any] | None
) -> None:
    """Each new loss and option passes check_loss: finite-difference gradients in float64,
    float32 kept, no input changed."""
    if name == "cross_entropy" and shapes[1] == (1,):
        inputs = [_rng.standard_normal((5, 4)), _IDS]
    elif name == "bce":
        inputs = [_rng.standard_normal((4, 3)), _rng.random((4, 3))]
    assert check_loss(loss_class(name), options, shapes, inputs=inputs) < 1e-5


@pytest.mark.parametrize(("name", "options", "shapes", "inputs"), CHECKS)
def test_float32_stays_close_to_float64(
    name: str, options: dict[str, Any], shapes: list[Any], inputs: list[Any] | None
) -> None:
    """In float32 the value and gradients are float32 and agree with float64 to 1e-5."""
    rng = np.random.default_rng(3)
    if name == "cross_entropy" and shapes[1] == (1,):
        xs = [rng.standard_normal((5, 4)), np.array(_IDS, dtype=float)]
    elif name == "bce":
        xs = [rng.standard_normal((4, 3)), rng.random((4, 3))]
    else:
        xs = [rng.standard_normal((4, *s)) for s in shapes]
    l64, l32 = loss(name, **options), loss(name, **options)
    v64, c64 = l64.forward(xs)
    v32, c32 = l32.forward([x.astype(np.float32) for x in xs])
    assert np.asarray(v32).dtype == np.float32
    assert float(v32) == pytest.approx(float(v64), rel=1e-5, abs=1e-6)
    for g64, g32 in zip(l64.backward(c64), l32.backward(c32), strict=True):
        if g64 is not None:
            assert g32.dtype == np.float32
            np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-6)


# -- validation of options ------------------------------------------------------------------------


def test_class_weights_must_fit_the_logits() -> None:
    """class_weights of the wrong length is a ShapeError naming both sizes."""
    with pytest.raises(graphnet.ShapeError, match=r"class_weights has 2 weights .* shape \[3\]"):
        loss("cross_entropy", class_weights=[1.0, 2.0]).check_shapes([(3,), (1,)])


def test_pos_weight_list_must_fit_the_outputs() -> None:
    """A pos_weight list of the wrong length is a ShapeError naming both sizes; one number fits
    any shape."""
    with pytest.raises(graphnet.ShapeError, match=r"pos_weight has 2 weights .* shape \[3\]"):
        loss("bce", pos_weight=[1.0, 2.0]).check_shapes([(3,), (3,)])
    loss("bce", pos_weight=2.0).check_shapes([(3,), (3,)])


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("cross_entropy", {"class_weights": [1.0, -0.5]}),
        ("cross_entropy", {"class_weights": [1.0, float("nan")]}),
        ("cross_entropy", {"label_smoothing": 1.5}),
        ("cross_entropy", {"label_smoothing": -0.1}),
        ("bce", {"pos_weight": -1.0}),
        ("bce", {"pos_weight": [1.0, float("inf")]}),
        ("huber", {"delta": 0.0}),
        ("huber", {"beta": 1.0}),
        ("l1", {"delta": 1.0}),
    ],
)
def test_bad_options_are_refused(name: str, options: dict[str, Any]) -> None:
    """Negative or non-finite weights, smoothing outside [0, 1], delta <= 0 and unknown options
    are validation errors."""
    with pytest.raises(ValidationError):
        loss(name, **options)


# -- against torch.nn -----------------------------------------------------------------------------


def _against_torch(
    name: str, options: dict[str, Any], inputs: list[np.ndarray], reference: Any, grads: int = 2
) -> None:
    """Value and gradient of each differentiable input equal torch's to 1e-9 (float64)."""
    torch = pytest.importorskip("torch")
    value, computed = value_and_grads(name, list(inputs), **options)
    tensors = [torch.tensor(x, requires_grad=i < grads) for i, x in enumerate(inputs)]
    expected = reference(torch.nn.functional, *tensors)
    expected.backward()
    assert value == pytest.approx(float(expected.detach()), rel=1e-9, abs=1e-12)
    for i in range(grads):
        np.testing.assert_allclose(
            computed[i], tensors[i].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=f"input {i}"
        )


_t = np.random.default_rng(13)
PRED, TARGET = 2 * _t.standard_normal((6, 3)), _t.standard_normal((6, 3))
LOGITS = 3 * _t.standard_normal((7, 4))
IDS = _t.integers(0, 4, (7, 1)).astype(float)
SOFT = _t.dirichlet(np.ones(4), 7)
WEIGHTS = [0.5, 2.0, 1.0, 0.1]


@pytest.mark.parametrize("delta", [1.0, 0.7, 2.5])
def test_huber_matches_torch(delta: float) -> None:
    """huber equals torch.nn.functional.huber_loss, values and both gradients, at |d| = delta
    too."""
    target = TARGET.copy()
    target[0, 0] = PRED[0, 0] - delta  # exactly at the corner
    _against_torch(
        "huber",
        {"delta": delta},
        [PRED, target],
        lambda F, p, t: F.huber_loss(p, t, delta=delta),
    )


def test_l1_matches_torch() -> None:
    """l1 equals torch.nn.functional.l1_loss, with a gradient of 0 where p equals t."""
    target = TARGET.copy()
    target[1] = PRED[1]
    _against_torch("l1", {}, [PRED, target], lambda F, p, t: F.l1_loss(p, t))


CE_OPTIONS = [
    {"class_weights": WEIGHTS},
    {"label_smoothing": 0.2},
    {"class_weights": WEIGHTS, "label_smoothing": 0.3},
    {"class_weights": [0.0, 1.0, 2.0, 3.0], "label_smoothing": 1.0},
]


def _torch_ce(options: dict[str, Any], ids: bool) -> Any:
    def reference(F: Any, logits: Any, labels: Any) -> Any:
        import torch

        weight = options.get("class_weights")
        return F.cross_entropy(
            logits,
            labels[:, 0].long() if ids else labels,
            weight=None if weight is None else torch.tensor(weight, dtype=torch.float64),
            label_smoothing=options.get("label_smoothing", 0.0),
        )

    return reference


@pytest.mark.parametrize("options", CE_OPTIONS)
def test_cross_entropy_options_on_class_ids_match_torch(options: dict[str, Any]) -> None:
    """cross_entropy with class_weights and label_smoothing over class ids equals
    torch.nn.functional.cross_entropy, value and logits gradient."""
    _against_torch("cross_entropy", options, [LOGITS, IDS], _torch_ce(options, True), grads=1)


@pytest.mark.parametrize("options", CE_OPTIONS)
def test_cross_entropy_options_on_soft_labels_match_torch(options: dict[str, Any]) -> None:
    """cross_entropy with class_weights and label_smoothing over soft labels equals torch's
    probability-target cross_entropy, value and the gradients of logits and labels."""
    _against_torch("cross_entropy", options, [LOGITS, SOFT], _torch_ce(options, False))


@pytest.mark.parametrize("pos_weight", [2.5, 0.0, [0.5, 3.0, 1.0, 7.0]])
def test_bce_pos_weight_matches_torch(pos_weight: Any) -> None:
    """bce with pos_weight equals binary_cross_entropy_with_logits, value and both gradients,
    for logits up to ±30."""
    z = 10 * LOGITS
    t = _t.random(z.shape)

    def reference(F: Any, logits: Any, target: Any) -> Any:
        import torch

        weight = torch.tensor(pos_weight, dtype=torch.float64)
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight)

    _against_torch("bce", {"pos_weight": pos_weight}, [z, t], reference)
