"""graphnet against an independent framework (PyTorch, when it is installed): the gradients of a
DAG using every differentiable built-in, with skip connections, several inputs, fan-out and
weighted losses, and the Adam and SGD updates over several steps.

PyTorch is not a dependency of graphnet; these tests run where it is installed
(`pip install torch`) and are skipped elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import built_in

import graphnet

torch = pytest.importorskip("torch")

DAG = """
inputs:
  a: {shape: [3]}
  b: {shape: [2]}
  y: {shape: [1]}
  labels: {shape: [1]}
  flags: {shape: [2]}
nodes:
  - {name: ha, type: dense, inputs: [a], units: 4}
  - {name: ta, type: tanh, inputs: [ha]}
  - {name: hb, type: dense, inputs: [b], units: 4, bias: false}
  - {name: joined, type: concat, inputs: [ta, hb]}
  - {name: h, type: dense, inputs: [joined], units: 6}
  - {name: r, type: relu, inputs: [h]}
  - {name: skip, type: add, inputs: [h, r, h]}
  - {name: s, type: sigmoid, inputs: [skip]}
  - {name: p, type: softmax, inputs: [s]}
  - {name: out, type: dense, inputs: [p], units: 1}
  - {name: logits, type: dense, inputs: [skip], units: 3}
  - {name: flag_logits, type: dense, inputs: [s], units: 2}
loss:
  - {type: mse, inputs: [out, y], weight: 0.5}
  - {type: cross_entropy, inputs: [logits, labels]}
  - {type: bce, inputs: [flag_logits, flags], weight: 2.0}
"""


def _network(tmp_path: Path) -> graphnet.Network:
    path = tmp_path / "dag.yaml"
    path.write_text(DAG, encoding="utf-8")
    return graphnet.build(graphnet.load_spec(path))


def _data(n: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "a": rng.standard_normal((n, 3)),
        "b": rng.standard_normal((n, 2)),
        "y": rng.standard_normal((n, 1)),
        "labels": rng.integers(0, 3, (n, 1)).astype(float),
        "flags": rng.integers(0, 2, (n, 2)).astype(float),
    }


def _torch_loss(params: dict[str, Any], data: dict[str, Any]) -> Any:
    F = torch.nn.functional
    ta = torch.tanh(data["a"] @ params["ha/W"] + params["ha/b"])
    hb = data["b"] @ params["hb/W"]
    h = torch.cat([ta, hb], dim=1) @ params["h/W"] + params["h/b"]
    skip = h + torch.relu(h) + h
    s = torch.sigmoid(skip)
    p = torch.softmax(s, dim=1)
    out = p @ params["out/W"] + params["out/b"]
    logits = skip @ params["logits/W"] + params["logits/b"]
    flag_logits = s @ params["flag_logits/W"] + params["flag_logits/b"]
    mse = F.mse_loss(out, data["y"])
    ce = F.cross_entropy(logits, data["labels"][:, 0].long())
    bce = F.binary_cross_entropy_with_logits(flag_logits, data["flags"])
    return 0.5 * mse + ce + 2.0 * bce


def test_dag_gradients_match_pytorch(tmp_path: Path) -> None:
    """Every parameter gradient of a DAG with concat, a three-way add (one node used twice),
    fan-out and three weighted losses equals PyTorch's autograd to 1e-10 (float64)."""
    network = _network(tmp_path)
    data = _data()
    values: list[Any] = [None] * len(network.slots)
    for name, array in data.items():
        values[network.slots[name]] = array
    loss_value = network.train_step(values)
    params = {k: torch.tensor(v, requires_grad=True) for k, v in network.params.items()}
    loss = _torch_loss(params, {k: torch.tensor(v) for k, v in data.items()})
    loss.backward()
    assert loss_value == pytest.approx(float(loss.detach()), rel=1e-12)
    for key, tensor in params.items():
        np.testing.assert_allclose(
            network.grads[key], tensor.grad.numpy(), rtol=1e-10, atol=1e-13, err_msg=key
        )


def _steps(optimizer: Any, torch_optimizer: Any, steps: int = 8) -> None:
    rng = np.random.default_rng(5)
    params = {"n/W": rng.standard_normal((4, 3)), "n/b": rng.standard_normal(3)}
    tensors = [torch.tensor(v.copy(), requires_grad=True) for v in params.values()]
    reference = torch_optimizer(tensors)
    state = optimizer.init_state(params)
    for _ in range(steps):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        optimizer.step(params, grads, state)
        for tensor, g in zip(tensors, grads.values(), strict=True):
            tensor.grad = torch.tensor(g)
        reference.step()
    for (key, value), tensor in zip(params.items(), tensors, strict=True):
        np.testing.assert_allclose(value, tensor.detach().numpy(), rtol=0, atol=1e-7, err_msg=key)


def test_adam_matches_torch_optim_adam() -> None:
    """graphnet's adam follows torch.optim.Adam to 1e-7 over 8 steps, weight decay included."""
    adam = built_in("optimizer", "adam")
    options = {"lr": 0.01, "beta1": 0.85, "beta2": 0.99, "eps": 1e-7, "weight_decay": 0.05}
    _steps(
        adam(options),
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.85, 0.99), eps=1e-7, weight_decay=0.05),
    )


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_matches_torch_optim_sgd(nesterov: bool) -> None:
    """graphnet's sgd (momentum, Nesterov, weight decay) follows torch.optim.SGD over 8 steps."""
    sgd = built_in("optimizer", "sgd")
    options = {"lr": 0.05, "momentum": 0.9, "nesterov": nesterov, "weight_decay": 0.01}
    _steps(
        sgd(options),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=nesterov, weight_decay=0.01),
    )
