"""Plans compiled to straight-line code: the same passes as :class:`graphnet.plan.Plan`'s
step-by-step ones, without the loop, and a network's whole training step in one function.

Each node's methods, parameters and slots are bound as names of a generated function; only
integers and generated names enter the source, every object is passed in through the
namespace. A failure is reported through the failing step's :class:`~graphnet.calls.Caller`,
as the step-by-step passes report it. The tests run both kinds of pass on the same networks and
compare the bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from graphnet.errors import GraphnetError
from graphnet.plan import LossUse, Step, loss_value


def generate(steps: list[Step], n_inputs: int) -> tuple[Any, Any]:
    """The forward (keeping caches) and backward passes of ``steps`` as generated functions."""
    space = _namespace(steps)
    forward = _forward_lines(steps, space)
    backward = _backward_lines(steps, n_inputs, space)
    return (
        _function("forward_cached", "v, c, training", _guarded(forward, "forward"), space),
        _function("backward", "v, c, g", _guarded(backward, "backward"), space),
    )


def generate_step(steps: list[Step], n_inputs: int, losses: Sequence[LossUse]) -> Any:
    """A whole training step as one generated function of the slot values: the forward pass,
    every loss and its gradients, and the backward pass, as ``Network.train_step`` runs them
    step by step; it returns the weighted total loss."""
    space = _namespace(steps)
    space["value"] = loss_value
    lines = ["    c = [None] * len(v)", "    g = [None] * len(v)"]
    lines += _guarded(["        training = True", *_forward_lines(steps, space)], "forward")
    lines += ["    total = 0.0"]
    for j, (weight, instance, caller, slots) in enumerate(losses):
        space[f"LF{j}"], space[f"LC{j}"] = instance.forward, caller
        args = ", ".join(f"v[{s}]" for s in slots)
        lines += [
            "    try:",
            f"        x, l{j} = LF{j}([{args}])",
            "    except Exception as error:",
            f"        raise LC{j}.failed('forward', error) from error",
            f"    total += {weight!r} * value(LC{j}, x)",
        ]
    for j, (weight, instance, _, slots) in enumerate(losses):
        space[f"LB{j}"], space[f"S{j}"] = instance.backward, slots
        lines += [
            "    try:",
            f"        a = LB{j}(l{j})",
            "    except Exception as error:",
            f"        raise LC{j}.failed('backward', error) from error",
        ]
        if weight:  # the loss's gradients, weighted, summed into the nodes they reach
            scaled = "x" if weight == 1.0 else f"x * {weight!r}"
            lines += [
                f"    for s, x in zip(S{j}, a):",
                f"        if x is not None and s >= {n_inputs}:",
                "            t = g[s]",
                f"            g[s] = {scaled} if t is None else t + {scaled}",
            ]
    lines += _guarded(_backward_lines(steps, n_inputs, space), "backward")
    lines += ["    return total"]
    return _function("train_step", "v", lines, space)


def _namespace(steps: list[Step]) -> dict[str, Any]:
    """The names every generated function of ``steps`` starts from."""

    def fail(i: int, method: str, error: Exception) -> GraphnetError:
        return steps[i].caller.failed(method, error)

    space: dict[str, Any] = {"copyto": np.copyto, "fail": fail}
    for i, step in enumerate(steps):
        space[f"F{i}"], space[f"B{i}"], space[f"P{i}"] = (
            step.layer.forward,
            step.layer.backward,
            step.params,
        )
    return space


def _forward_lines(steps: list[Step], space: dict[str, Any]) -> list[str]:
    """The lines of the forward pass, keeping every step's cache in ``c``."""
    lines: list[str] = []
    for i, step in enumerate(steps):
        args = ", ".join(f"v[{s}]" for s in step.in_slots)
        lines += [
            f"        i = {i}",
            f"        v[{step.slot}], c[{step.slot}] = F{i}(P{i}, [{args}], training)",
        ]
    return lines


def _backward_lines(steps: list[Step], n_inputs: int, space: dict[str, Any]) -> list[str]:
    """The lines of the backward pass, last step first."""
    lines: list[str] = []
    for i in reversed(range(len(steps))):
        lines += _backward_step(i, steps[i], n_inputs, space)
    return lines


def _guarded(body: list[str], method: str) -> list[str]:
    """``body`` (lines that set ``i`` to the step they run) in a ``try`` that reports a
    failure through step ``i``'s caller."""
    return [
        "    i = 0",
        "    try:",
        *(body or ["        pass"]),
        "    except Exception as error:",
        f"        raise fail(i, {method!r}, error) from error",
    ]


def _function(name: str, signature: str, body: list[str], space: dict[str, Any]) -> Any:
    source = "\n".join([f"def {name}({signature}):", *body])
    exec(compile(source, f"<graphnet {name} pass>", "exec"), space)
    return space[name]


def _backward_step(i: int, step: Step, n_inputs: int, space: dict[str, Any]) -> list[str]:
    """The lines of one step of the backward pass (binding its gradient views in ``space``)."""
    lines = [f"        i = {i}", f"        d = g[{step.slot}]", "        if d is None:"]
    lines += [f"            V{i}_{k}.fill(0)" for k in range(len(step.grads))] or [
        "            pass"
    ]
    lines += [
        "        else:",
        f"            g[{step.slot}] = None",
        f"            a, b = B{i}(P{i}, c[{step.slot}], d)",
    ]
    for j, slot in enumerate(step.in_slots):
        if slot >= n_inputs:
            lines += [
                f"            x = a[{j}]",
                "            if x is not None:",
                f"                t = g[{slot}]",
                f"                g[{slot}] = x if t is None else t + x",
            ]
    for k, (name, view) in enumerate(step.grads.items()):
        space[f"N{i}_{k}"], space[f"V{i}_{k}"] = name, view
        lines += [
            f"            x = b[N{i}_{k}]",
            f"            if x is not V{i}_{k}:",
            f"                copyto(V{i}_{k}, x)",
        ]
    return lines
