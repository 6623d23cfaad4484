"""A built network: its own plugin instances, its parameters, and the passes that train it.

:func:`build` turns a spec into a :class:`Network`. Each network creates its own layer and
loss instances from the graph, so two networks of one spec (two threads training at once)
share nothing but read-only options. Plans are made once per set of targets and cached.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from graphnet.base import Array, Layer, Loss
from graphnet.calls import Caller
from graphnet.errors import DataError
from graphnet.finite import non_finite
from graphnet.graph import Graph, ancestors, build_graph
from graphnet.normalize import PREFIX, Normalizer
from graphnet.params import ParamDict, by_node, checked_weights, flat_views, initial_params
from graphnet.plan import Plan, Step, check_gradients, check_output, loss_value
from graphnet.spec import Spec

SPEC_DIR = "data/spec_dir"


def build(spec: Spec) -> Network:
    """The network of a validated spec, with freshly initialised parameters."""
    return Network(build_graph(spec))


class Network:
    """A built network: parameters plus the means to run the graph forward and backward.

    Parameters and their gradients live in two flat buffers (``params.flat`` and
    ``grads.flat``); ``params`` and ``grads`` are views of them keyed ``<node>/<param>``.
    """

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.dtype = np.dtype(graph.dtype)
        names = [*graph.inputs, *(node.name for node in graph.nodes)]
        self.slots = {name: i for i, name in enumerate(names)}
        self.n_inputs = len(graph.inputs)
        self.layers: dict[str, Layer] = {node.name: node.make() for node in graph.nodes}
        self.loss_plugins: list[Loss] = [loss.make() for loss in graph.losses]
        self._loss_callers = [
            Caller(
                f"{loss.caller.label} of {', '.join(loss.inputs)}",
                loss.caller.where,
                loss.caller.package,
            )
            for loss in graph.losses
        ]
        fresh = initial_params(graph, self.layers)
        kept = {f"{node.name}/{b}" for node in graph.nodes for b in self.layers[node.name].buffers}
        trained = {k: v.shape for k, v in fresh.items() if k not in kept}
        self.params: ParamDict = flat_views(trained, self.dtype)
        self.grads: ParamDict = flat_views(trained, self.dtype)
        self.buffers: ParamDict = flat_views(
            {k: v.shape for k, v in fresh.items() if k in kept}, self.dtype
        )
        arrays = self.arrays()
        for key, value in fresh.items():
            np.copyto(arrays[key], value, casting="unsafe")
        self._node_params = by_node(arrays, graph)  # a layer's forward sees its buffers
        self._node_grads = by_node(self.grads, graph)
        self.set_rng(np.random.default_rng(graph.spec.seed))
        self._plans: dict[tuple[str, ...], Plan] = {}
        self._loss_uses = [  # what a training step needs of each loss, in one tuple
            (loss.weight, instance, caller, [self.slots[ref] for ref in loss.inputs])
            for loss, instance, caller in zip(
                graph.losses, self.loss_plugins, self._loss_callers, strict=True
            )
        ]
        self._train_plan = self.plan([ref for loss in graph.losses for ref in loss.inputs])
        self._train_plan.losses = self._loss_uses
        self._train_plan.built()
        self._hint_gradients()
        self.normalizer = Normalizer()
        """``data.normalize``: applied by :meth:`predict` to the inputs and undone on the outputs
        trained against a normalized target (set by training, or by loading a run's weights)."""

    def _hint_gradients(self) -> None:
        """Tell layers and losses which input gradients anyone needs and where parameter
        gradients go (the engine hints of the plugin guide). Plugins may use them to skip work."""
        for node in self.graph.nodes:
            layer = self.layers[node.name]
            layer.input_grads_needed = tuple(ref not in self.graph.inputs for ref in node.inputs)
            layer.grad_out = self._node_grads[node.name]
        for loss, instance in zip(self.graph.losses, self.loss_plugins, strict=True):
            instance.input_grads_needed = tuple(ref not in self.graph.inputs for ref in loss.inputs)

    # -- plans -------------------------------------------------------------------------------

    def plan(self, targets: Iterable[str]) -> Plan:
        """The plan computing ``targets`` (node or input names), made once and cached."""
        key = tuple(targets)
        if key not in self._plans:
            needed = ancestors(self.graph, key)
            steps = [
                Step(
                    self.slots[node.name],
                    node.name,
                    self.layers[node.name],
                    tuple(self.slots[ref] for ref in node.inputs),
                    self._node_params[node.name],
                    self._node_grads[node.name],
                    node.shape,
                    node.caller,
                )
                for node in self.graph.nodes
                if node.name in needed
            ]
            inputs = [name for name in self.graph.inputs if name in needed]
            self._plans[key] = Plan(steps, inputs, self.n_inputs)
        return self._plans[key]

    def set_rng(self, rng: np.random.Generator) -> None:
        """Give every layer the generator it draws from while training (dropout masks)."""
        for layer in self.layers.values():
            layer.rng = rng

    # -- arrays in ---------------------------------------------------------------------------

    def values(self, inputs: Mapping[str, Any], names: Sequence[str]) -> list[Any]:
        """Slot values holding ``inputs`` (the ``names`` a plan needs), checked and cast."""
        values: list[Any] = [None] * len(self.slots)
        for name in names:
            if name not in inputs:
                given = ", ".join(sorted(inputs)) or "nothing"
                raise DataError(f"missing input {name!r} (given: {given})")
            raw = np.asarray(inputs[name])
            with np.errstate(over="ignore"):
                array = np.asarray(raw, dtype=self.dtype)
            problem = non_finite(raw, array) if array.dtype != raw.dtype else None
            if problem is not None:
                raise DataError(f"input {name!r}: {problem}")
            shape = self.graph.inputs[name]
            if array.shape[1:] != shape:
                raise DataError(
                    f"input {name!r}: per-sample shape {list(array.shape[1:])} (array shape "
                    f"{list(array.shape)}), the spec says {list(shape)}"
                )
            values[self.slots[name]] = array
        return values

    # -- passes ------------------------------------------------------------------------------

    def run(self, plan: Plan, values: list[Any], caches: list[Any] | None, training: bool) -> None:
        """Forward pass of ``plan`` over ``values`` (by slot), keeping caches if asked.

        The first pass of a plan checks every output's dtype and shape against the graph.
        """
        if caches is None:
            caches = [None] * len(values)
        if not plan.forward_checked:
            plan.loop_forward(values, caches, training, check_output(self.dtype))
            plan.forward_checked = True
        else:
            plan.forward_cached(values, caches, training)

    def forward(self, inputs: Mapping[str, Any], training: bool = False) -> dict[str, Array]:
        """Every node's output computable from ``inputs`` (a dict of batch arrays)."""
        available = {name for name in self.graph.inputs if name in inputs}
        for node in self.graph.nodes:
            if all(ref in available for ref in node.inputs):
                available.add(node.name)
        plan = self.plan([n.name for n in self.graph.nodes if n.name in available])
        values = self.values(inputs, plan.inputs)
        self.run(plan, values, None, training)
        return {step.name: values[step.slot] for step in plan.steps}

    def predict(self, inputs: Mapping[str, Any]) -> dict[str, Array]:
        """The spec's ``outputs`` for a batch of the inputs they depend on, in the data's own
        units: ``data.normalize`` is applied to the inputs and undone on the outputs."""
        plan = self.plan(self.graph.outputs)
        values = self.values(self.normalizer.apply(inputs), plan.inputs)
        self.run(plan, values, None, training=False)
        return self.normalizer.undo({name: values[self.slots[name]] for name in self.graph.outputs})

    def losses(
        self, values: list[Any], training: bool, caches: list[Any] | None = None
    ) -> tuple[float, list[Any]]:
        """Forward pass and every loss: the weighted total and the losses' caches."""
        self.run(self._train_plan, values, caches, training)
        total = 0.0
        loss_caches: list[Any] = []
        for weight, instance, caller, slots in self._loss_uses:
            value, cache = caller.call("forward", instance.forward, [values[s] for s in slots])
            loss_caches.append(cache)
            total += weight * loss_value(caller, value)
        return total, loss_caches

    def train_step(self, values: list[Any]) -> float:
        """Forward, every loss, and backward: the weighted total loss, whose parameter
        gradients are written into ``self.grads`` (overwritten by the next step).

        Once the plan is compiled and its first pass has checked every plugin, the whole step
        runs as one generated function (:meth:`Plan.compile`)."""
        plan = self._train_plan
        if plan.compiled and plan.checked:
            return plan.train_step(values)
        caches: list[Any] = [None] * len(values)
        total, loss_caches = self.losses(values, True, caches)
        grads: list[Any] = [None] * len(values)
        n_inputs = self.n_inputs
        for (weight, instance, caller, slots), cache in zip(
            self._loss_uses, loss_caches, strict=True
        ):
            loss_grads = caller.call("backward", instance.backward, cache)
            for slot, g in zip(slots, loss_grads, strict=False):
                if g is not None and slot >= n_inputs and weight:
                    if weight != 1.0:
                        g = g * weight
                    grads[slot] = g if grads[slot] is None else grads[slot] + g
        if not plan.checked:
            plan.loop_backward(values, caches, grads, check_gradients(self.dtype, values))
            plan.checked = True
        else:
            plan.backward(values, caches, grads)
            plan.step_done()
        return total

    def first_non_finite(self, values: list[Any]) -> str | None:
        """The first node (in order) whose last output held NaN or Inf."""
        for step in self._train_plan.steps:
            value = values[step.slot]
            if value is not None and not np.isfinite(value).all():
                return step.name
        return None

    # -- weights -----------------------------------------------------------------------------

    def arrays(self) -> dict[str, Array]:
        """The parameters and then the buffers (the live arrays), keyed ``<node>/<name>``: what
        ``weights.npz`` holds."""
        return {**self.params, **self.buffers}

    def file_arrays(self) -> dict[str, Array]:
        """What ``weights.npz`` holds: :meth:`arrays` and the normalizer's ``data/`` arrays."""
        return {**self.arrays(), **self.normalizer.arrays()}

    def load_weights(self, weights: str | Path | Mapping[str, Any], where: str = "weights") -> None:
        """Replace the parameters and buffers by those of an NPZ file (or a dict): the same
        keys, the same shapes. Every array is checked before any of them changes. A file's
        ``data/`` arrays (``data.normalize``'s statistics) become the :attr:`normalizer`."""
        if isinstance(weights, str | Path):
            from graphnet.npzfile import expect_arrays, read_npz

            where = str(weights)
            known = {k: (v.shape, v.dtype) for k, v in self.arrays().items()}
            for name in self.graph.spec.data.normalize if self.graph.spec.data else {}:
                for part in ("shift", "scale"):
                    known[f"{PREFIX}{name}/{part}"] = (self.graph.inputs[name], np.dtype(float))
            weights = read_npz(weights, "weights file", expect_arrays(known, "weights file", where))
        data = {k: v for k, v in weights.items() if k.startswith(PREFIX)}
        params = {k: v for k, v in weights.items() if not k.startswith(PREFIX)}
        arrays = self.arrays()
        checked = checked_weights(params, arrays, where)
        if data:
            self.normalizer = Normalizer.from_arrays(self.graph.spec, data, where)

        for key, array in checked.items():
            np.copyto(arrays[key], array, casting="unsafe")

    def weights(self) -> dict[str, Array]:
        """A copy of the parameters and buffers, keyed ``<node>/<name>``."""
        return {k: v.copy() for k, v in self.arrays().items()}
