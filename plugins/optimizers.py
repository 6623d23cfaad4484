"""Built-in optimizers: sgd and adam."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import graphnet
from graphnet.base import Array


class SGD(graphnet.Optimizer):
    """Stochastic gradient descent, with optional momentum, Nesterov momentum and weight decay."""

    type = "sgd"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        lr: float = Field(0.01, gt=0, description="Learning rate.")
        momentum: float = Field(0.0, ge=0, lt=1, description="Momentum factor (0 = plain SGD).")
        nesterov: bool = Field(False, description="Use Nesterov momentum (needs momentum > 0).")
        weight_decay: float = Field(
            0.0, ge=0, description="L2 penalty added to the gradient: g + wd·p."
        )

    def init_state(self, params: Mapping[str, Array]) -> dict[str, Array]:
        if not self.options.momentum:
            return {}
        return {f"{key}/momentum": np.zeros_like(p) for key, p in params.items()}

    def step(
        self, params: Mapping[str, Array], grads: Mapping[str, Array], state: dict[str, Array]
    ) -> None:
        lr, momentum, decay = self.options.lr, self.options.momentum, self.options.weight_decay
        for key, p in params.items():
            g = grads[key]
            if decay:
                g = g + decay * p
            if momentum:
                buffer = state[f"{key}/momentum"]
                buffer *= momentum
                buffer += g
                g = g + momentum * buffer if self.options.nesterov else buffer
            p -= lr * g


class Adam(graphnet.Optimizer):
    """Adam (Kingma & Ba) with bias correction: p -= lr·m̂ / (√v̂ + eps), as torch.optim.Adam."""

    type = "adam"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        lr: float = Field(0.001, gt=0, description="Learning rate.")
        beta1: float = Field(
            0.9, ge=0, lt=1, description="Decay rate of the first-moment estimate."
        )
        beta2: float = Field(
            0.999, ge=0, lt=1, description="Decay rate of the second-moment estimate."
        )
        eps: float = Field(1e-8, gt=0, description="Added to √v̂ for numerical stability.")
        weight_decay: float = Field(
            0.0, ge=0, description="L2 penalty added to the gradient: g + wd·p."
        )

    def init_state(self, params: Mapping[str, Array]) -> dict[str, Array]:
        state = {"step": np.zeros((), dtype=np.int64)}
        for key, p in params.items():
            state[f"{key}/m"] = np.zeros_like(p)
            state[f"{key}/v"] = np.zeros_like(p)
        return state

    def step(
        self, params: Mapping[str, Array], grads: Mapping[str, Array], state: dict[str, Array]
    ) -> None:
        o = self.options
        state["step"] += 1
        t = int(state["step"])
        correction1 = 1 - o.beta1**t
        root_correction2 = math.sqrt(1 - o.beta2**t)
        for key, p in params.items():
            g = grads[key]
            if o.weight_decay:
                g = g + o.weight_decay * p
            m, v = state[f"{key}/m"], state[f"{key}/v"]
            m *= o.beta1
            m += (1 - o.beta1) * g
            v *= o.beta2
            v += (1 - o.beta2) * (g * g)
            denominator = np.sqrt(v) / root_correction2 + o.eps
            p -= (o.lr / correction1) * (m / denominator)


@graphnet.hookimpl
def graphnet_optimizers() -> list[type[graphnet.Optimizer]]:
    return [SGD, Adam]
