"""Running a graph on arrays: parameters, forward in topological order, backward in reverse.

A :class:`Network` owns the parameters (``"<node>/<param>"`` -> array, in the spec's dtype) and
compiles, once per set of targets, a plan: the nodes those targets need, in order, with the slot
each reads and writes. Gradients are summed where a node feeds several others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graphnet.base import Array, Layer
from graphnet.errors import DataError, GraphnetError, PluginError, TrainingError
from graphnet.graph import Graph, ancestors


@dataclass
class Step:
    """One node of a plan: where it reads and writes, and its parameters."""

    slot: int
    name: str
    type: str
    layer: Layer
    in_slots: tuple[int, ...]
    params: dict[str, Array]
    keys: dict[str, str]  # param name -> "<node>/<param>"
    shape: tuple[int, ...]


@dataclass
class Plan:
    """The nodes that some targets need, in topological order."""

    steps: list[Step]
    inputs: list[str]  # graph inputs the targets need
    checked: bool = False


@dataclass
class LossResult:
    """The outcome of one training step's forward and backward passes."""

    total: float
    values: list[float]
    grads: dict[str, Array]


def _plugin_failure(step: Step, method: str, error: Exception) -> GraphnetError:
    if isinstance(error, GraphnetError):
        return error
    return TrainingError(
        f"node {step.name!r} ({step.type}): {method} failed: {type(error).__name__}: {error}"
    )


def init_rng(seed: int, node: str) -> np.random.Generator:
    """The generator a node draws its initial parameters from: one per node name and seed, so
    the order of the nodes in the file does not change any of them."""
    return np.random.default_rng([seed, 1, *node.encode()])


class Network:
    """A built network: parameters plus the means to run the graph forward and backward."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.dtype = np.dtype(graph.dtype)
        names = [*graph.inputs, *(node.name for node in graph.nodes)]
        self.slots = {name: i for i, name in enumerate(names)}
        self.n_inputs = len(graph.inputs)
        self.params: dict[str, Array] = {}
        self._node_params: dict[str, dict[str, Array]] = {}
        for node in graph.nodes:
            try:
                fresh = node.layer.init_params(
                    node.input_shapes, init_rng(graph.spec.seed, node.name)
                )
            except Exception as error:
                raise PluginError(
                    f"node {node.name!r} ({node.type}): init_params failed: {type(error).__name__}: {error}",
                    graph.spec.where(("nodes", node.index)),
                ) from None
            own = {k: np.array(v, dtype=self.dtype, order="C", copy=True) for k, v in fresh.items()}
            self._node_params[node.name] = own
            self.params.update({f"{node.name}/{k}": v for k, v in own.items()})
        self.set_rng(np.random.default_rng(graph.spec.seed))
        self._plans: dict[tuple[str, ...], Plan] = {}
        loss_refs = [ref for loss in graph.losses for ref in loss.inputs]
        self._train_plan = self.plan(loss_refs)
        self._loss_slots = [[self.slots[ref] for ref in loss.inputs] for loss in graph.losses]

    # -- plans -------------------------------------------------------------------------------

    def plan(self, targets: Iterable[str]) -> Plan:
        """The plan computing ``targets`` (node or input names), compiled once and cached."""
        key = tuple(targets)
        if key not in self._plans:
            needed = ancestors(self.graph, key)
            steps = [
                Step(
                    self.slots[node.name],
                    node.name,
                    node.type,
                    node.layer,
                    tuple(self.slots[ref] for ref in node.inputs),
                    self._node_params[node.name],
                    {k: f"{node.name}/{k}" for k in self._node_params[node.name]},
                    node.shape,
                )
                for node in self.graph.nodes
                if node.name in needed
            ]
            inputs = [name for name in self.graph.inputs if name in needed]
            self._plans[key] = Plan(steps, inputs)
        return self._plans[key]

    def set_rng(self, rng: np.random.Generator) -> None:
        """Give every layer the generator it draws from while training (dropout masks)."""
        for node in self.graph.nodes:
            node.layer.rng = rng

    # -- arrays in ---------------------------------------------------------------------------

    def _values(self, inputs: Mapping[str, Any], names: Sequence[str]) -> list[Any]:
        values: list[Any] = [None] * len(self.slots)
        for name in names:
            if name not in inputs:
                given = ", ".join(sorted(inputs)) or "nothing"
                raise DataError(f"missing input {name!r} (given: {given})")
            array = np.asarray(inputs[name], dtype=self.dtype)
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
        """Forward pass of ``plan`` over ``values`` (by slot), keeping caches if asked."""
        dtype = self.dtype
        for step in plan.steps:
            try:
                out, cache = step.layer.forward(
                    step.params, [values[s] for s in step.in_slots], training
                )
            except Exception as error:
                raise _plugin_failure(step, "forward", error) from error
            if getattr(out, "dtype", None) != dtype or out.shape[1:] != step.shape:
                raise PluginError(
                    f"node {step.name!r} ({step.type}): forward returned "
                    f"{getattr(out, 'dtype', type(out).__name__)} {list(getattr(out, 'shape', ()))}, "
                    f"expected {dtype} [batch, {', '.join(map(str, step.shape))}]"
                )
            values[step.slot] = out
            if caches is not None:
                caches[step.slot] = cache

    def forward(self, inputs: Mapping[str, Any], training: bool = False) -> dict[str, Array]:
        """Every node's output computable from ``inputs`` (a dict of batch arrays)."""
        available = {name for name in self.graph.inputs if name in inputs}
        for node in self.graph.nodes:
            if all(ref in available for ref in node.inputs):
                available.add(node.name)
        plan = self.plan([n.name for n in self.graph.nodes if n.name in available])
        values = self._values(inputs, plan.inputs)
        self.run(plan, values, None, training)
        return {step.name: values[step.slot] for step in plan.steps}

    def predict(self, inputs: Mapping[str, Any]) -> dict[str, Array]:
        """The spec's ``outputs`` for a batch of the inputs they depend on."""
        plan = self.plan(self.graph.outputs)
        values = self._values(inputs, plan.inputs)
        self.run(plan, values, None, training=False)
        return {name: values[self.slots[name]] for name in self.graph.outputs}

    def losses(
        self, values: list[Any], training: bool, caches: list[Any] | None = None
    ) -> tuple[float, list[float], list[Any]]:
        """Forward pass and every loss; returns the weighted total, each value and loss caches."""
        self.run(self._train_plan, values, caches, training)
        total = 0.0
        each: list[float] = []
        loss_caches: list[Any] = []
        for loss, slots in zip(self.graph.losses, self._loss_slots, strict=True):
            try:
                value, cache = loss.loss.forward([values[s] for s in slots])
            except Exception as error:
                if isinstance(error, GraphnetError):
                    raise
                raise TrainingError(
                    f"loss {loss.type!r}: forward failed: {type(error).__name__}: {error}"
                ) from error
            value = float(value)
            each.append(value)
            loss_caches.append(cache)
            total += loss.weight * value
        return total, each, loss_caches

    def train_step(self, values: list[Any]) -> LossResult:
        """Forward, every loss, and backward: the gradient of the weighted total loss."""
        caches: list[Any] = [None] * len(self.slots)
        total, each, loss_caches = self.losses(values, True, caches)
        grads: list[Any] = [None] * len(self.slots)
        n_inputs = self.n_inputs

        def add(slot: int, g: Any) -> None:
            grads[slot] = g if grads[slot] is None else grads[slot] + g

        for loss, slots, cache in zip(
            self.graph.losses, self._loss_slots, loss_caches, strict=True
        ):
            for slot, g in zip(slots, loss.loss.backward(cache), strict=False):
                if g is not None and slot >= n_inputs and loss.weight:
                    add(slot, g if loss.weight == 1.0 else g * loss.weight)
        param_grads: dict[str, Array] = {}
        plan = self._train_plan
        for step in reversed(plan.steps):
            g = grads[step.slot]
            if g is None:
                continue
            grads[step.slot] = None
            try:
                in_grads, p_grads = step.layer.backward(step.params, caches[step.slot], g)
            except Exception as error:
                raise _plugin_failure(step, "backward", error) from error
            if not plan.checked:
                self._check_backward(step, values, in_grads, p_grads)
            for slot, ig in zip(step.in_slots, in_grads, strict=True):
                if ig is not None and slot >= n_inputs:
                    add(slot, ig)
            for name, pg in p_grads.items():
                param_grads[step.keys[name]] = pg
        plan.checked = True
        for key, p in self.params.items():
            if key not in param_grads:
                param_grads[key] = np.zeros_like(p)
        return LossResult(total, each, param_grads)

    def _check_backward(self, step: Step, values: list[Any], in_grads: Any, p_grads: Any) -> None:
        where = f"node {step.name!r} ({step.type}): backward"
        if len(in_grads) != len(step.in_slots):
            raise PluginError(
                f"{where} returned {len(in_grads)} input gradients for {len(step.in_slots)} inputs"
            )
        if set(p_grads) != set(step.params):
            raise PluginError(
                f"{where} returned gradients for {sorted(p_grads)}, its parameters are {sorted(step.params)}"
            )
        pairs = [
            (f"input {i}", g, values[s])
            for i, (g, s) in enumerate(zip(in_grads, step.in_slots, strict=True))
        ]
        pairs += [(f"parameter {k!r}", p_grads[k], step.params[k]) for k in step.params]
        for what, g, like in pairs:
            if g is None:
                continue
            if getattr(g, "shape", None) != like.shape or g.dtype != self.dtype:
                raise PluginError(
                    f"{where} gave {what} a gradient of {getattr(g, 'dtype', type(g).__name__)} "
                    f"{list(getattr(g, 'shape', ()))}, expected {self.dtype} {list(like.shape)}"
                )

    def first_non_finite(self, values: list[Any]) -> str | None:
        """The first node (in order) whose last output held NaN or Inf."""
        for step in self._train_plan.steps:
            value = values[step.slot]
            if value is not None and not np.isfinite(value).all():
                return step.name
        return None

    # -- weights -----------------------------------------------------------------------------

    def load_weights(self, weights: str | Path | Mapping[str, Any]) -> None:
        """Replace the parameters by those of an NPZ file (or a dict): same keys, same shapes."""
        from graphnet.runfolder import read_npz

        where = str(weights) if isinstance(weights, str | Path) else "weights"
        arrays = (
            read_npz(weights, "weights file") if isinstance(weights, str | Path) else dict(weights)
        )
        missing = [k for k in self.params if k not in arrays]
        extra = [k for k in arrays if k not in self.params]
        if missing or extra:
            parts = []
            if missing:
                parts.append("missing " + ", ".join(missing))
            if extra:
                parts.append("unexpected " + ", ".join(extra))
            raise DataError(
                f"{'; '.join(parts)} (the network's parameters are {', '.join(self.params) or 'none'})",
                where,
            )
        checked: dict[str, Array] = {}  # check every array before changing any parameter
        for key, target in self.params.items():
            array = np.asarray(arrays[key])
            if array.shape != target.shape:
                raise DataError(
                    f"{key}: shape {list(array.shape)}, the network needs {list(target.shape)}",
                    where,
                )
            if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
                raise DataError(f"{key}: {array.dtype} array, expected real numbers", where)
            if not np.isfinite(array).all():
                raise DataError(f"{key}: holds NaN or Inf", where)
            checked[key] = array
        for key, array in checked.items():
            np.copyto(self.params[key], array, casting="unsafe")

    def weights(self) -> dict[str, Array]:
        """A copy of the parameters, keyed ``<node>/<param>``."""
        return {k: v.copy() for k, v in self.params.items()}
