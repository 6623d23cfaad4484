"""Plans: the steps that compute some targets, and the passes that run them.

A :class:`Plan` is the one description of a pass: the nodes the targets need, in topological
order, each with the slot it writes, the slots it reads, its layer, parameters and gradient
views. The step-by-step passes here interpret it (the first pass of a plan also checks what
every plugin returns); :mod:`graphnet.compiled` generates straight-line code from the same
steps. Values, caches and gradients are lists indexed by slot; slots below ``n_inputs`` are
graph inputs, which take no gradient. Gradients are summed where a node feeds several others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphnet.base import Array, Layer, Loss
from graphnet.calls import Caller

# Compiling a plan to straight-line code costs about a tenth of a millisecond per node and saves
# a microsecond or two per node and step: the training plan of a network of up to COMPILE_NODES
# nodes is compiled when the network is built, a larger one after COMPILE_AFTER training steps.
COMPILE_NODES = 2000
COMPILE_AFTER = 50


@dataclass
class Step:
    """One node of a plan: where it reads and writes, its layer and its parameters."""

    slot: int
    name: str
    layer: Layer
    in_slots: tuple[int, ...]
    params: dict[str, Array]  # parameters and buffers
    grads: dict[str, Array]  # views of the network's flat gradient buffer: parameters only
    shape: tuple[int, ...]
    caller: Caller


Check = Callable[..., None]
LossUse = tuple[float, Loss, Caller, list[int]]  # a loss's weight, instance, caller, input slots


@dataclass
class Plan:
    """The nodes that some targets need, in topological order, and the passes over them."""

    steps: list[Step]
    inputs: list[str]  # graph inputs the targets need
    n_inputs: int  # slots below this are graph inputs: no gradient is kept for them
    checked: bool = False  # the first backward pass checked every gradient
    forward_checked: bool = False  # the first forward pass checked every output
    uses: int = 0  # training steps run through this plan
    losses: list[LossUse] = field(default_factory=list)  # a training plan's losses

    def __post_init__(self) -> None:
        self.forward_cached: Any = self.loop_forward
        self.backward: Any = self.loop_backward
        self.train_step: Any = None
        self.compiled = False

    def compile(self) -> None:
        """Switch to passes compiled to straight-line code; a training plan also gets its
        whole step (forward, losses, backward) as one function, ``train_step``."""
        from graphnet.compiled import generate, generate_step

        self.forward_cached, self.backward = generate(self.steps, self.n_inputs)
        if self.losses:
            self.train_step = generate_step(self.steps, self.n_inputs, self.losses)
        self.compiled = True

    def built(self) -> None:
        """The plan is to train: compile it now if it is small enough (see ``COMPILE_NODES``)."""
        if len(self.steps) <= COMPILE_NODES:
            self.compile()

    def step_done(self) -> None:
        """Count a training step; a large plan is compiled only once it has run a while."""
        self.uses += 1
        if self.uses == COMPILE_AFTER and not self.compiled:
            self.compile()

    def loop_forward(
        self, v: list[Any], c: list[Any], training: bool, check: Check | None = None
    ) -> None:
        """The forward pass step by step; ``check(step, output)``, when given, looks at each
        output before it is used (raising a ``PluginFailure`` for nonsense), and every step is
        checked to change none of the arrays it is given (its inputs, its parameters)."""
        for step in self.steps:
            inputs = [v[s] for s in step.in_slots]
            kept = _copies(step, inputs) if check is not None else None
            out, c[step.slot] = step.caller.call(
                "forward", step.layer.forward, step.params, inputs, training
            )
            if check is not None:
                assert kept is not None
                _unchanged(step, kept)
                check(step, out)
            v[step.slot] = out

    def loop_backward(
        self, v: list[Any], c: list[Any], g: list[Any], check: Check | None = None
    ) -> None:
        """The backward pass step by step; ``check(step, in_grads, p_grads)``, when given, looks
        at what each step returns before it is used (raising a ``PluginFailure`` for nonsense)."""
        for step in reversed(self.steps):
            d = g[step.slot]
            if d is None:  # nothing downstream needs this node's gradient
                for view in step.grads.values():
                    view.fill(0)
                continue
            g[step.slot] = None
            in_grads, p_grads = step.caller.call(
                "backward", step.layer.backward, step.params, c[step.slot], d
            )
            if check is not None:
                check(step, in_grads, p_grads)
            for s, x in zip(step.in_slots, in_grads):  # noqa: B905 - checked on the first pass
                if x is not None and s >= self.n_inputs:
                    g[s] = x if g[s] is None else g[s] + x
            for name, x in p_grads.items():
                view = step.grads[name]
                if x is not view:
                    np.copyto(view, x)


def _copies(step: Step, inputs: list[Any]) -> list[tuple[str, Any, Any]]:
    """What a step is given that it must leave as it is: its inputs and trained parameters."""
    given = [(f"input {i}", x) for i, x in enumerate(inputs)]
    given += [(f"parameter {k!r}", step.params[k]) for k in step.grads]
    return [(what, x, np.array(x, copy=True)) for what, x in given]


def _unchanged(step: Step, kept: list[tuple[str, Any, Any]]) -> None:
    for what, array, copy in kept:
        if not np.array_equal(array, copy, equal_nan=True):
            raise step.caller.wrong(
                "forward",
                f"changed its {what} in place; a layer must not write into the arrays it is "
                "given (it may only update its declared buffers)",
            )


def check_output(dtype: np.dtype[Any]) -> Check:
    """A forward check: each output has the spec's dtype and the node's inferred shape."""

    def check(step: Step, out: Any) -> None:
        if getattr(out, "dtype", None) != dtype or out.shape[1:] != step.shape:
            raise step.caller.wrong(
                "forward",
                f"returned {getattr(out, 'dtype', type(out).__name__)} "
                f"{list(getattr(out, 'shape', ()))}, expected {dtype} "
                f"[batch, {', '.join(map(str, step.shape))}]",
            )

    return check


def check_gradients(dtype: np.dtype[Any], values: list[Any]) -> Check:
    """A backward check: a gradient per input and per parameter, each of its array's shape."""

    def check(step: Step, in_grads: Any, p_grads: Any) -> None:
        wrong = step.caller.wrong
        if len(in_grads) != len(step.in_slots):
            raise wrong(
                "backward",
                f"returned {len(in_grads)} input gradients for {len(step.in_slots)} inputs",
            )
        if not hasattr(p_grads, "keys") or set(p_grads) != set(step.grads):
            got = sorted(p_grads) if hasattr(p_grads, "keys") else type(p_grads).__name__
            raise wrong(
                "backward",
                f"returned gradients for {got}, its parameters are {sorted(step.grads)}",
            )
        pairs = [
            (f"input {i}", g, values[s])
            for i, (g, s) in enumerate(zip(in_grads, step.in_slots, strict=True))
        ]
        pairs += [(f"parameter {k!r}", p_grads[k], step.params[k]) for k in step.grads]
        for what, g, like in pairs:
            if g is None:
                continue
            if getattr(g, "shape", None) != like.shape or g.dtype != dtype:
                raise wrong(
                    "backward",
                    f"gave {what} a gradient of {getattr(g, 'dtype', type(g).__name__)} "
                    f"{list(getattr(g, 'shape', ()))}, expected {dtype} {list(like.shape)}",
                )

    return check


def loss_value(caller: Caller, value: Any) -> float:
    """What a loss's forward returned as its value, as a float; anything else is the loss's
    fault."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise caller.wrong(
            "forward",
            f"returned {type(value).__name__} {list(getattr(value, 'shape', ()))} "
            "as the loss, not a number",
        ) from None
