"""Plans compiled to straight-line code: the same passes as :class:`graphnet.plan.Plan`'s
step-by-step ones, without the loop.

Each node's methods, parameters and slots are bound as names of a generated function; only
integers and generated names enter the source, every object is passed in through the
namespace. A failure is reported through the failing step's :class:`~graphnet.calls.Caller`,
as the step-by-step passes report it. The tests run both kinds of pass on the same networks and
compare the bits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from graphnet.errors import GraphnetError

if TYPE_CHECKING:  # plan.py calls this module; only the type comes back
    from graphnet.plan import Step


def generate(steps: list[Step], n_inputs: int) -> tuple[Any, Any]:
    """The forward (keeping caches) and backward passes of ``steps`` as generated functions."""

    def fail(i: int, method: str, error: Exception) -> GraphnetError:
        return steps[i].caller.failed(method, error)

    space: dict[str, Any] = {"copyto": np.copyto, "fail": fail}
    forward: list[str] = []
    backward: list[str] = []
    for i, step in enumerate(steps):
        space[f"F{i}"], space[f"B{i}"], space[f"P{i}"] = (
            step.layer.forward,
            step.layer.backward,
            step.params,
        )
        args = ", ".join(f"v[{s}]" for s in step.in_slots)
        forward += [
            f"        i = {i}",
            f"        v[{step.slot}], c[{step.slot}] = F{i}(P{i}, [{args}], training)",
        ]
    for i in reversed(range(len(steps))):
        backward += _backward_step(i, steps[i], n_inputs, space)

    def function(name: str, method: str, signature: str, body: list[str]) -> Any:
        source = "\n".join(
            [
                f"def {name}({signature}):",
                "    i = 0",
                "    try:",
                *(body or ["        pass"]),
                "    except Exception as error:",
                f"        raise fail(i, {method!r}, error) from error",
            ]
        )
        exec(compile(source, f"<graphnet {name} pass>", "exec"), space)
        return space[name]

    return (
        function("forward_cached", "forward", "v, c, training", forward),
        function("backward", "backward", "v, c, g", backward),
    )


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
