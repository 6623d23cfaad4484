"""The optimizers adamw and rmsprop: their update rules in closed form, the flat-buffer path,
and (where PyTorch is installed) torch.optim's AdamW and RMSprop over ten steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from graphnet.registry import get_registry

Params = dict[str, np.ndarray]


def optimizer(name: str, **options: Any) -> Any:
    return get_registry().entries("optimizer")[name].cls(options)


class Flat(dict[str, np.ndarray]):
    """Arrays that are views of one flat buffer ``flat``, as the engine hands them over."""

    flat: np.ndarray


def _flat(arrays: Params) -> Flat:
    views = Flat()
    views.flat = np.concatenate([a.reshape(-1) for a in arrays.values()])
    offset = 0
    for key, a in arrays.items():
        views[key] = views.flat[offset : offset + a.size].reshape(a.shape)
        offset += a.size
    return views


def _problem(steps: int, seed: int = 0) -> tuple[Params, list[Params]]:
    rng = np.random.default_rng(seed)
    params = {"n/W": rng.standard_normal((3, 2)), "n/b": rng.standard_normal(2)}
    grads = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(steps)]
    return params, grads


def _run(opt: Any, params: Params, grads: list[Params]) -> Params:
    params = {k: v.copy() for k, v in params.items()}
    arrays = {k: id(v) for k, v in params.items()}
    state = opt.init_state(params)
    for g in grads:
        opt.step(params, g, state)
    assert {k: id(v) for k, v in params.items()} == arrays  # updated in place
    return params


def test_adamw_decays_the_weights_before_the_adam_step() -> None:
    """adamw: p -= lr·wd·p, then Adam's bias-corrected step on the undecayed gradient."""
    lr, b1, b2, eps, wd = 0.01, 0.8, 0.99, 1e-6, 0.1
    start, grads = _problem(6)
    params = _run(
        optimizer("adamw", lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd), start, grads
    )
    for key, p in start.items():
        p = p.copy()
        m = np.zeros_like(p)
        v = np.zeros_like(p)
        for t, g in enumerate(grads, start=1):
            p = p * (1 - lr * wd)
            m = b1 * m + (1 - b1) * g[key]
            v = b2 * v + (1 - b2) * g[key] ** 2
            p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        np.testing.assert_allclose(params[key], p, rtol=1e-12, atol=1e-12)


def test_adamw_defaults_to_a_weight_decay_of_a_hundredth() -> None:
    """adamw's weight_decay is 0.01 unless given; adam's stays 0."""
    assert optimizer("adamw").options.weight_decay == 0.01
    assert optimizer("adam").options.weight_decay == 0.0


def test_adamw_without_weight_decay_is_adam() -> None:
    """With weight_decay 0 adamw takes the same steps as adam, to the bit."""
    start, grads = _problem(5)
    a = _run(optimizer("adam", lr=0.01), start, grads)
    b = _run(optimizer("adamw", lr=0.01, weight_decay=0.0), start, grads)
    for key in a:
        assert np.array_equal(a[key], b[key])


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_rmsprop_matches_the_closed_form(momentum: float) -> None:
    """rmsprop: s = α·s + (1-α)·g², step g / (√s + eps), with momentum and weight decay."""
    lr, alpha, eps, wd = 0.01, 0.9, 1e-6, 0.05
    start, grads = _problem(6)
    params = _run(
        optimizer("rmsprop", lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=wd),
        start,
        grads,
    )
    for key, p in start.items():
        p = p.copy()
        s = np.zeros_like(p)
        buf = np.zeros_like(p)
        for g in grads:
            d = g[key] + wd * p
            s = alpha * s + (1 - alpha) * d**2
            buf = momentum * buf + d / (np.sqrt(s) + eps)
            p = p - lr * buf
        np.testing.assert_allclose(params[key], p, rtol=1e-12, atol=1e-12)


def test_rmsprop_keeps_a_momentum_buffer_only_with_momentum() -> None:
    """rmsprop's state is the running average of g² per array, plus a buffer with momentum."""
    params, _ = _problem(0)
    assert sorted(optimizer("rmsprop").init_state(params)) == ["n/W/square_avg", "n/b/square_avg"]
    assert len(optimizer("rmsprop", momentum=0.5).init_state(params)) == 4


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("adamw", {"lr": 0.01, "weight_decay": 0.1}),
        ("rmsprop", {"lr": 0.01}),
        ("rmsprop", {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.01}),
        ("adam", {"lr": 0.01, "weight_decay": 0.1}),
        ("sgd", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_flat_buffer_gives_the_same_bits_as_each_array(
    name: str, options: dict[str, Any], dtype: Any
) -> None:
    """An optimizer stepping the engine's one flat buffer ends with exactly the bits of one
    stepping each array, and keeps the dtype."""
    start, grads = _problem(4)
    start = {k: v.astype(dtype) for k, v in start.items()}
    grads = [{k: v.astype(dtype) for k, v in g.items()} for g in grads]
    each = _run(optimizer(name, **options), start, grads)
    flat_params = _flat(start)
    opt = optimizer(name, **options)
    state = opt.init_state(flat_params)
    for g in grads:
        opt.step(flat_params, _flat(g), state)
    for key, value in each.items():
        assert value.dtype == dtype
        assert np.array_equal(flat_params[key], value), key


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("adamw", {"lr": -0.1}),
        ("adamw", {"weight_decay": -0.01}),
        ("rmsprop", {"alpha": 1.0}),
        ("rmsprop", {"momentum": -0.5}),
        ("rmsprop", {"centered": True}),
    ],
)
def test_bad_options_are_refused(name: str, options: dict[str, Any]) -> None:
    """Out-of-range and unknown options are validation errors, not silent surprises."""
    with pytest.raises(ValueError):
        optimizer(name, **options)


TorchFactory = Callable[[Any, list[Any]], Any]


def _against_torch(opt: Any, make_reference: TorchFactory, steps: int = 10) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    params = {"n/W": rng.standard_normal((4, 3)), "n/b": rng.standard_normal(3)}
    tensors = [torch.tensor(v.copy(), requires_grad=True) for v in params.values()]
    reference = make_reference(torch, tensors)
    state = opt.init_state(params)
    for _ in range(steps):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        opt.step(params, grads, state)
        for tensor, g in zip(tensors, grads.values(), strict=True):
            tensor.grad = torch.tensor(g)
        reference.step()
    for (key, value), tensor in zip(params.items(), tensors, strict=True):
        np.testing.assert_allclose(value, tensor.detach().numpy(), rtol=0, atol=1e-9, err_msg=key)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01, 0.3])
def test_adamw_matches_torch_optim_adamw(weight_decay: float) -> None:
    """adamw follows torch.optim.AdamW to 1e-9 over 10 steps (float64)."""
    _against_torch(
        optimizer("adamw", lr=0.02, beta1=0.85, beta2=0.99, eps=1e-7, weight_decay=weight_decay),
        lambda torch, p: torch.optim.AdamW(
            p, lr=0.02, betas=(0.85, 0.99), eps=1e-7, weight_decay=weight_decay
        ),
    )


def test_adamw_defaults_match_torchs() -> None:
    """adamw with no options takes torch.optim.AdamW's default steps (lr 1e-3, wd 0.01)."""
    _against_torch(optimizer("adamw"), lambda torch, p: torch.optim.AdamW(p))


@pytest.mark.parametrize(
    ("momentum", "weight_decay"), [(0.0, 0.0), (0.9, 0.0), (0.0, 0.05), (0.7, 0.05)]
)
def test_rmsprop_matches_torch_optim_rmsprop(momentum: float, weight_decay: float) -> None:
    """rmsprop follows torch.optim.RMSprop to 1e-9 over 10 steps, momentum and weight decay
    included (float64)."""
    _against_torch(
        optimizer(
            "rmsprop", lr=0.01, alpha=0.9, eps=1e-6, momentum=momentum, weight_decay=weight_decay
        ),
        lambda torch, p: torch.optim.RMSprop(
            p, lr=0.01, alpha=0.9, eps=1e-6, momentum=momentum, weight_decay=weight_decay
        ),
    )


def test_rmsprop_defaults_match_torchs() -> None:
    """rmsprop with no options takes torch.optim.RMSprop's default steps (lr 0.01, alpha 0.99)."""
    _against_torch(optimizer("rmsprop"), lambda torch, p: torch.optim.RMSprop(p))
