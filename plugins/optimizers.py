"""Built-in optimizers: sgd, adam, adamw and rmsprop, each as its torch.optim namesake."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

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
        return {f"{key}/momentum": np.zeros_like(p) for key, p in _arrays(params).items()}

    def step(
        self, params: Mapping[str, Array], grads: Mapping[str, Array], state: dict[str, Array]
    ) -> None:
        params, grads = _arrays(params), _arrays(grads)
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
            scaled = _scratch(self, p)
            np.multiply(g, lr, out=scaled)
            p -= scaled


def _arrays(arrays: Mapping[str, Array]) -> Mapping[str, Array]:
    """``{"all": flat}`` when the engine keeps every array in one flat buffer, else ``arrays``.

    Updating the flat buffer in one call gives the same bits as updating each array.
    """
    flat = getattr(arrays, "flat", None)
    return {"all": flat} if flat is not None else arrays


def _scratch(optimizer: object, like: Array) -> Array:
    """A work array of ``like``'s shape and dtype, kept on the optimizer between steps."""
    work: Array | None = optimizer.__dict__.get("_work")
    if work is None or work.shape != like.shape or work.dtype != like.dtype:
        work = optimizer.__dict__["_work"] = np.empty_like(like)
    return work


class Adam(graphnet.Optimizer):
    """Adam (Kingma & Ba) with bias correction: p -= lr·m̂ / (√v̂ + eps), as torch.optim.Adam."""

    type = "adam"
    decoupled: ClassVar[bool] = False  # AdamW: weight decay shrinks p instead of adding to g

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
        for key, p in _arrays(params).items():
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
        grads = _arrays(grads)
        for key, p in _arrays(params).items():
            g = grads[key]
            if o.weight_decay and self.decoupled:
                p *= 1 - o.lr * o.weight_decay
            elif o.weight_decay:
                g = g + o.weight_decay * p
            m, v = state[f"{key}/m"], state[f"{key}/v"]
            work = _scratch(self, p)
            m *= o.beta1
            m += np.multiply(g, 1 - o.beta1, out=work)
            v *= o.beta2
            np.multiply(g, g, out=work)
            v += np.multiply(work, 1 - o.beta2, out=work)
            np.sqrt(v, out=work)  # the denominator, √v̂ + eps
            work /= root_correction2
            work += o.eps
            np.divide(m, work, out=work)
            p -= np.multiply(work, o.lr / correction1, out=work)


class AdamW(Adam):
    """Adam with decoupled weight decay, as torch.optim.AdamW: p -= lr·wd·p, then Adam's step."""

    type = "adamw"
    decoupled = True

    class Options(Adam.Options):
        weight_decay: float = Field(
            0.01,
            ge=0,
            description="Decoupled weight decay: p -= lr·wd·p before each Adam step.",
        )


class RMSprop(graphnet.Optimizer):
    """RMSprop, as torch.optim.RMSprop (not centered): p -= lr·g / (√s + eps).

    ``s = alpha·s + (1 - alpha)·g²``; with momentum μ, ``buf = μ·buf + g / (√s + eps)`` and
    ``p -= lr·buf``; weight decay adds ``wd·p`` to g first.
    """

    type = "rmsprop"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        lr: float = Field(0.01, gt=0, description="Learning rate.")
        alpha: float = Field(
            0.99, ge=0, lt=1, description="Decay rate of the running average of g²."
        )
        eps: float = Field(1e-8, gt=0, description="Added to √s for numerical stability.")
        momentum: float = Field(0.0, ge=0, lt=1, description="Momentum factor (0 = none).")
        weight_decay: float = Field(
            0.0, ge=0, description="L2 penalty added to the gradient: g + wd·p."
        )

    def init_state(self, params: Mapping[str, Array]) -> dict[str, Array]:
        state = {}
        for key, p in _arrays(params).items():
            state[f"{key}/square_avg"] = np.zeros_like(p)
            if self.options.momentum:
                state[f"{key}/momentum"] = np.zeros_like(p)
        return state

    def step(
        self, params: Mapping[str, Array], grads: Mapping[str, Array], state: dict[str, Array]
    ) -> None:
        o = self.options
        grads = _arrays(grads)
        for key, p in _arrays(params).items():
            g = grads[key]
            if o.weight_decay:
                g = g + o.weight_decay * p
            square_avg = state[f"{key}/square_avg"]
            work = _scratch(self, p)
            square_avg *= o.alpha
            np.multiply(g, g, out=work)
            square_avg += np.multiply(work, 1 - o.alpha, out=work)
            np.sqrt(square_avg, out=work)  # the denominator, √s + eps
            work += o.eps
            np.divide(g, work, out=work)
            if o.momentum:
                buffer = state[f"{key}/momentum"]
                buffer *= o.momentum
                buffer += work
                np.multiply(buffer, o.lr, out=work)
            else:
                work *= o.lr
            p -= work


@graphnet.hookimpl
def graphnet_optimizers() -> list[type[graphnet.Optimizer]]:
    return [SGD, Adam, AdamW, RMSprop]
