"""Built-in optimizers: ``sgd``."""

from __future__ import annotations

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


@graphnet.hookimpl
def graphnet_optimizers() -> list[type[graphnet.Optimizer]]:
    return [SGD]
