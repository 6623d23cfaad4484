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
    grads: dict[str, Array]  # views of the network's flat gradient buffer
    shape: tuple[int, ...]
    where: str | None = None  # `file:line: nodes[i]`, for messages


@dataclass
class Plan:
    """The nodes that some targets need, in topological order."""

    steps: list[Step]
    inputs: list[str]  # graph inputs the targets need
    n_inputs: int  # slots below this are graph inputs: no gradient is kept for them
    checked: bool = False  # the first backward pass checked every gradient
    forward_checked: bool = False  # the first forward pass checked every output
    uses: int = 0  # training steps run through this plan

    def __post_init__(self) -> None:
        self.forward_cached: Any = self._loop_forward
        self.backward: Any = self._loop_backward

    def compile(self) -> None:
        """Switch to passes compiled to straight-line code."""
        self.forward_cached, self.backward = _compile(self.steps, self.n_inputs)

    def step_done(self) -> None:
        """Count a training step; a large plan is compiled only once it has run a while."""
        self.uses += 1
        if self.uses == COMPILE_AFTER and self.backward == self._loop_backward:
            self.compile()

    def _loop_forward(self, v: list[Any], c: list[Any], training: bool, check: Any = None) -> None:
        """The forward pass step by step; ``check(step, output)``, when given, looks at each
        output before it is used (raising a ``PluginError`` for nonsense)."""
        step = self.steps[0] if self.steps else None
        try:
            for step in self.steps:
                out, c[step.slot] = step.layer.forward(
                    step.params, [v[s] for s in step.in_slots], training
                )
                if check is not None:
                    check(step, out)
                v[step.slot] = out
        except Exception as error:
            assert step is not None
            raise _plugin_failure(step, "forward", error) from error

    def _loop_backward(self, v: list[Any], c: list[Any], g: list[Any], check: Any = None) -> None:
        """The backward pass step by step; ``check(step, in_grads, p_grads)``, when given, looks
        at what each step returns before it is used (raising a ``PluginError`` for nonsense)."""
        step = self.steps[0]
        try:
            for step in reversed(self.steps):
                d = g[step.slot]
                if d is None:  # nothing downstream needs this node's gradient
                    for view in step.grads.values():
                        view.fill(0)
                    continue
                g[step.slot] = None
                in_grads, p_grads = step.layer.backward(step.params, c[step.slot], d)
                if check is not None:
                    check(step, in_grads, p_grads)
                for s, x in zip(step.in_slots, in_grads):  # noqa: B905 - checked on the first pass
                    if x is not None and s >= self.n_inputs:
                        g[s] = x if g[s] is None else g[s] + x
                for name, x in p_grads.items():
                    view = step.grads[name]
                    if x is not view:
                        np.copyto(view, x)
        except Exception as error:
            raise _plugin_failure(step, "backward", error) from error


# Compiling a plan to straight-line code costs about a tenth of a millisecond per node and saves
# a microsecond or two per node and step: the training plan of a network of up to COMPILE_NODES
# nodes is compiled when the network is built, a larger one after COMPILE_AFTER training steps.
COMPILE_NODES = 2000
COMPILE_AFTER = 50


def _compile(steps: list[Step], n_inputs: int) -> tuple[Any, Any]:
    """The passes of ``steps`` as generated functions: no loop, no tuple unpacking, each node's
    methods, parameters and slots bound as names. Only integers and generated names enter the
    source; every object is passed in through the namespace."""
    space: dict[str, Any] = {"copyto": np.copyto, "fail": _failed(steps)}
    cached: list[str] = []
    backward: list[str] = []
    for i, step in enumerate(steps):
        space[f"F{i}"], space[f"B{i}"], space[f"P{i}"] = (
            step.layer.forward,
            step.layer.backward,
            step.params,
        )
        args = ", ".join(f"v[{s}]" for s in step.in_slots)
        cached += [
            f"        i = {i}",
            f"        v[{step.slot}], c[{step.slot}] = F{i}(P{i}, [{args}], training)",
        ]
    for i in reversed(range(len(steps))):
        step = steps[i]
        backward += [f"        i = {i}", f"        d = g[{step.slot}]", "        if d is None:"]
        backward += [f"            V{i}_{k}.fill(0)" for k in range(len(step.grads))] or [
            "            pass"
        ]
        backward += [
            "        else:",
            f"            g[{step.slot}] = None",
            f"            a, b = B{i}(P{i}, c[{step.slot}], d)",
        ]
        for j, slot in enumerate(step.in_slots):
            if slot >= n_inputs:
                backward += [
                    f"            x = a[{j}]",
                    "            if x is not None:",
                    f"                t = g[{slot}]",
                    f"                g[{slot}] = x if t is None else t + x",
                ]
        for k, (name, view) in enumerate(step.grads.items()):
            space[f"N{i}_{k}"], space[f"V{i}_{k}"] = name, view
            backward += [
                f"            x = b[N{i}_{k}]",
                f"            if x is not V{i}_{k}:",
                f"                copyto(V{i}_{k}, x)",
            ]

    def function(name: str, signature: str, body: list[str]) -> Any:
        source = "\n".join(
            [
                f"def {name}({signature}):",
                "    i = 0",
                "    try:",
                *(body or ["        pass"]),
                "    except Exception as error:",
                f"        raise fail(i, {name!r}, error) from error",
            ]
        )
        exec(compile(source, f"<graphnet {name} pass>", "exec"), space)
        return space[name]

    return (
        function("forward_cached", "v, c, training", cached),
        function("backward", "v, c, g", backward),
    )


def _failed(steps: list[Step]) -> Any:
    def fail(i: int, method: str, error: Exception) -> GraphnetError:
        return _plugin_failure(steps[i], "backward" if method == "backward" else "forward", error)

    return fail


@dataclass
class LossResult:
    """The outcome of one training step's forward and backward passes."""

    total: float
    values: list[float]
    grads: dict[str, Array]


def _plugin_failure(step: Step, method: str, error: Exception) -> GraphnetError:
    if isinstance(error, GraphnetError):
        error.where = error.where or step.where
        return error
    return TrainingError(
        f"node {step.name!r} ({step.type}): {method} failed: {type(error).__name__}: {error}",
        step.where,
    )


def init_rng(seed: int, node: str) -> np.random.Generator:
    """The generator a node draws its initial parameters from: one per node name and seed, so
    the order of the nodes in the file does not change any of them."""
    return np.random.default_rng([seed, 1, *node.encode()])


class ParamDict(dict[str, Array]):
    """Arrays keyed ``<node>/<param>`` that are views into one flat buffer, ``flat``.

    It is an ordinary dict to a plugin; an optimizer that knows about ``flat`` can update every
    parameter in one vectorised call (the built-in ones do).
    """

    flat: Array


def _flat_views(shapes: Mapping[str, tuple[int, ...]], dtype: np.dtype[Any]) -> ParamDict:
    """A zeroed flat buffer and a view of it for each shape, in order."""
    views = ParamDict()
    views.flat = np.zeros(sum(int(np.prod(s)) for s in shapes.values()), dtype)
    offset = 0
    for key, shape in shapes.items():
        size = int(np.prod(shape))
        views[key] = views.flat[offset : offset + size].reshape(shape)
        offset += size
    return views


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
        fresh: dict[str, Array] = {}
        for node in graph.nodes:
            try:
                drawn = node.layer.init_params(
                    node.input_shapes, init_rng(graph.spec.seed, node.name)
                )
                fresh.update({f"{node.name}/{k}": np.asarray(v) for k, v in drawn.items()})
            except Exception as error:
                raise PluginError(
                    f"node {node.name!r} ({node.type}): init_params failed: {type(error).__name__}: {error}",
                    graph.spec.where(("nodes", node.index)),
                ) from None
        shapes = {k: v.shape for k, v in fresh.items()}
        self.params = _flat_views(shapes, self.dtype)
        self.grads = _flat_views(shapes, self.dtype)
        for key, value in fresh.items():
            np.copyto(self.params[key], value, casting="unsafe")
        self._node_params: dict[str, dict[str, Array]] = {node.name: {} for node in graph.nodes}
        self._node_grads: dict[str, dict[str, Array]] = {node.name: {} for node in graph.nodes}
        for key in fresh:
            node_name, _, param = key.rpartition("/")
            self._node_params[node_name][param] = self.params[key]
            self._node_grads[node_name][param] = self.grads[key]
        self.set_rng(np.random.default_rng(graph.spec.seed))
        self._plans: dict[tuple[str, ...], Plan] = {}
        loss_refs = [ref for loss in graph.losses for ref in loss.inputs]
        self._train_plan = self.plan(loss_refs)
        if len(self._train_plan.steps) <= COMPILE_NODES:
            self._train_plan.compile()
        self._loss_slots = [[self.slots[ref] for ref in loss.inputs] for loss in graph.losses]
        self._hint_gradients()

    def _hint_gradients(self) -> None:
        """Tell layers and losses which input gradients anyone needs and where parameter
        gradients go. Plugins may use these hints to skip work; they need not."""
        for node in self.graph.nodes:
            node.layer.input_grads_needed = tuple(
                ref not in self.graph.inputs for ref in node.inputs
            )
            node.layer.grad_out = self._node_grads[node.name]
        for loss in self.graph.losses:
            loss.loss.input_grads_needed = tuple(
                ref not in self.graph.inputs for ref in loss.inputs
            )

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
                    self._node_grads[node.name],
                    node.shape,
                    self.graph.spec.where(("nodes", node.index)),
                )
                for node in self.graph.nodes
                if node.name in needed
            ]
            inputs = [name for name in self.graph.inputs if name in needed]
            self._plans[key] = Plan(steps, inputs, self.n_inputs)
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
        """Forward pass of ``plan`` over ``values`` (by slot), keeping caches if asked.

        The first pass of a plan checks every output's dtype and shape against the graph.
        """
        if caches is None:
            caches = [None] * len(values)
        if not plan.forward_checked:
            plan._loop_forward(values, caches, training, self._check_forward)
            plan.forward_checked = True
        else:
            plan.forward_cached(values, caches, training)

    def _check_forward(self, step: Step, out: Any) -> None:
        if getattr(out, "dtype", None) != self.dtype or out.shape[1:] != step.shape:
            raise PluginError(
                f"node {step.name!r} ({step.type}): forward returned "
                f"{getattr(out, 'dtype', type(out).__name__)} {list(getattr(out, 'shape', ()))}, "
                f"expected {self.dtype} [batch, {', '.join(map(str, step.shape))}]",
                step.where,
            )

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
            except GraphnetError as error:  # e.g. a label that is no class id: name the loss
                error.message = f"loss {loss.type!r} of {', '.join(loss.inputs)}: {error.message}"
                error.where = error.where or self.graph.spec.where(("loss", loss.index))
                raise
            except Exception as error:
                raise TrainingError(
                    f"loss {loss.type!r}: forward failed: {type(error).__name__}: {error}",
                    self.graph.spec.where(("loss", loss.index)),
                ) from error
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise PluginError(
                    f"loss {loss.type!r}: forward returned {type(value).__name__} "
                    f"{list(getattr(value, 'shape', ()))} as the loss, not a number",
                    self.graph.spec.where(("loss", loss.index)),
                ) from None
            each.append(value)
            loss_caches.append(cache)
            total += loss.weight * value
        return total, each, loss_caches

    def train_step(self, values: list[Any]) -> LossResult:
        """Forward, every loss, and backward: the gradient of the weighted total loss.

        The parameter gradients are written into ``self.grads`` (overwritten by the next step).
        """
        plan = self._train_plan
        caches: list[Any] = [None] * len(values)
        total, each, loss_caches = self.losses(values, True, caches)
        grads: list[Any] = [None] * len(values)
        n_inputs = self.n_inputs
        for loss, slots, cache in zip(
            self.graph.losses, self._loss_slots, loss_caches, strict=True
        ):
            weight = loss.weight
            try:
                loss_grads = loss.loss.backward(cache)
            except Exception as error:
                if isinstance(error, GraphnetError):
                    raise
                raise TrainingError(
                    f"loss {loss.type!r}: backward failed: {type(error).__name__}: {error}"
                ) from error
            for slot, g in zip(slots, loss_grads, strict=False):
                if g is not None and slot >= n_inputs and weight:
                    if weight != 1.0:
                        g = g * weight
                    grads[slot] = g if grads[slot] is None else grads[slot] + g
        if not plan.checked:
            self._backward_checked(plan, values, caches, grads)
            return LossResult(total, each, self.grads)
        plan.backward(values, caches, grads)
        plan.step_done()
        return LossResult(total, each, self.grads)

    def _backward_checked(
        self, plan: Plan, values: list[Any], caches: list[Any], grads: list[Any]
    ) -> None:
        """The first backward pass of a plan: each step checked for what it returns."""

        def check(step: Step, in_grads: Any, p_grads: Any) -> None:
            self._check_backward(step, values, in_grads, p_grads)

        plan._loop_backward(values, caches, grads, check)
        plan.checked = True

    def _check_backward(self, step: Step, values: list[Any], in_grads: Any, p_grads: Any) -> None:
        where = f"node {step.name!r} ({step.type}): backward"
        if len(in_grads) != len(step.in_slots):
            raise PluginError(
                f"{where} returned {len(in_grads)} input gradients for {len(step.in_slots)} inputs",
                step.where,
            )
        if set(p_grads) != set(step.params):
            raise PluginError(
                f"{where} returned gradients for {sorted(p_grads)}, its parameters are {sorted(step.params)}",
                step.where,
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
                    f"{list(getattr(g, 'shape', ()))}, expected {self.dtype} {list(like.shape)}",
                    step.where,
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
