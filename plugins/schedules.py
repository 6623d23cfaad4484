"""Built-in learning-rate schedules: step, exponential, cosine, warmup_cosine and plateau.

Each is a pure function of the epoch (numbered from 1), the optimizer's base learning rate and
the history of the epochs so far, and gives the rate torch.optim.lr_scheduler's namesake gives
epoch ``e`` when stepped once per epoch (torch counts that epoch as ``e - 1``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

import graphnet

History = Sequence[Mapping[str, Any]]


class Step(graphnet.Schedule):
    """Multiply the rate by gamma every `every` epochs, as torch's StepLR(step_size=every)."""

    type = "step"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        every: int = Field(ge=1, description="Epochs between two reductions.")
        gamma: float = Field(0.1, gt=0, description="Factor applied at each reduction.")

    def lr(self, epoch: int, base_lr: float, history: History) -> float:
        return base_lr * self.options.gamma ** ((epoch - 1) // self.options.every)


class Exponential(graphnet.Schedule):
    """Multiply the rate by gamma every epoch, as torch's ExponentialLR: base_lr·gamma^(e-1)."""

    type = "exponential"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        gamma: float = Field(gt=0, description="Factor applied after each epoch.")

    def lr(self, epoch: int, base_lr: float, history: History) -> float:
        return base_lr * self.options.gamma ** (epoch - 1)


def _cosine(base_lr: float, min_lr: float, t: int, period: int) -> float:
    """Half a cosine from base_lr (t = 0) to min_lr (t = period), min_lr after."""
    t = min(t, period)
    return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * t / period)) / 2


class Cosine(graphnet.Schedule):
    """Cosine annealing, as torch's CosineAnnealingLR(T_max=epochs, eta_min=min_lr).

    Epoch e gets min_lr + (base_lr - min_lr)·(1 + cos(π·(e-1)/epochs))/2: base_lr at epoch 1,
    min_lr from epoch epochs + 1 on (where torch's would rise again).
    """

    type = "cosine"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        epochs: int = Field(ge=1, description="Epochs from base_lr down to min_lr (T_max).")
        min_lr: float = Field(0.0, ge=0, description="The rate at the end, and after it.")

    def lr(self, epoch: int, base_lr: float, history: History) -> float:
        return _cosine(base_lr, self.options.min_lr, epoch - 1, self.options.epochs)


class WarmupCosine(graphnet.Schedule):
    """Linear warmup to base_lr, then cosine annealing to min_lr.

    Epoch e <= warmup gets base_lr·e/warmup; later epochs follow `cosine` over the remaining
    epochs - warmup epochs, starting again from base_lr: min_lr + (base_lr - min_lr)·(1 +
    cos(π·(e - warmup - 1)/(epochs - warmup)))/2, min_lr from epoch epochs + 1 on. That is
    torch's SequentialLR of LinearLR(start_factor=1/warmup, total_iters=warmup-1) and
    CosineAnnealingLR(T_max=epochs-warmup, eta_min=min_lr) with the milestone at warmup;
    warmup 0 is `cosine`.
    """

    type = "warmup_cosine"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        warmup: int = Field(ge=0, description="Epochs of linear warmup up to base_lr.")
        epochs: int = Field(
            ge=1, description="Epochs in all, warmup included, until the rate is min_lr."
        )
        min_lr: float = Field(0.0, ge=0, description="The rate at the end, and after it.")

        @model_validator(mode="after")
        def _warmup_before_the_end(self) -> Self:
            if self.warmup >= self.epochs:
                raise ValueError(f"warmup ({self.warmup}) must be less than epochs ({self.epochs})")
            return self

    def lr(self, epoch: int, base_lr: float, history: History) -> float:
        o = self.options
        if epoch <= o.warmup:
            return base_lr * epoch / o.warmup
        return _cosine(base_lr, o.min_lr, epoch - o.warmup - 1, o.epochs - o.warmup)


class Plateau(graphnet.Schedule):
    """Multiply the rate by factor when `monitor` stops improving, as torch's ReduceLROnPlateau.

    An epoch improves on the best so far when it is below best·(1 - threshold) (mode min;
    above best·(1 + threshold) in mode max). After more than `patience` epochs without
    improvement the rate is multiplied by `factor` (not below `min_lr`; a change of 1e-8 or
    less is skipped) and the count starts again. The rate is recomputed from the history at
    every call, so a resumed run gets the same rates.
    """

    type = "plateau"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        monitor: str = Field("val_loss", description="The column of metrics.csv to watch.")
        mode: Literal["min", "max"] = Field(
            "min", description="Whether lower (min) or higher (max) values are better."
        )
        factor: float = Field(0.1, gt=0, lt=1, description="Factor applied at each reduction.")
        patience: int = Field(
            10, ge=0, description="Epochs without improvement tolerated before a reduction."
        )
        threshold: float = Field(
            1e-4, ge=0, description="Relative change that counts as an improvement."
        )
        min_lr: float = Field(0.0, ge=0, description="The rate never goes below this.")

    def lr(self, epoch: int, base_lr: float, history: History) -> float:
        o = self.options
        lr, best, bad = base_lr, math.inf if o.mode == "min" else -math.inf, 0
        for record in history[: epoch - 1]:
            if o.monitor not in record:
                raise graphnet.SpecError(
                    f"plateau monitors {o.monitor!r}, which is not a column of metrics.csv "
                    f"({', '.join(record)}); set `monitor` to one of them"
                )
            value = float(record[o.monitor])
            if o.mode == "min":
                better = value < best * (1 - o.threshold)
            else:
                better = value > best * (1 + o.threshold)
            if better:
                best, bad = value, 0
            else:
                bad += 1
            if bad > o.patience:
                reduced = max(lr * o.factor, o.min_lr)
                if lr - reduced > 1e-8:
                    lr = reduced
                bad = 0
        return lr


@graphnet.hookimpl
def graphnet_schedules() -> list[type[graphnet.Schedule]]:
    return [Step, Exponential, Cosine, WarmupCosine, Plateau]
