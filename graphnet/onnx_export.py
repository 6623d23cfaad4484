"""``graphnet export``: a trained run as an ONNX model for inference.

The model's inputs are the spec's inputs that its ``outputs`` need (batch axis dynamic, named
``batch``), its outputs the spec's ``outputs``, all in the spec's dtype. ``data.normalize`` is
folded in: ``(x - shift) / scale`` on each normalized input and ``y · scale + shift`` on each
output trained against a normalized target, both in float64 as ``Network.predict`` does them.
Every layer writes its own nodes through its ``to_onnx(ctx, inputs, params)`` method, given an
:class:`ExportContext`; parameters and constants become initializers.

This module imports ``onnx``: only ``graphnet export`` and ``graphnet.export_onnx`` load it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from graphnet.base import Array, Shape
from graphnet.errors import DataError, GraphnetError, PluginError
from graphnet.files import write_output
from graphnet.graph import Node, ancestors
from graphnet.network import Network

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as error:  # the extra is missing
    raise DataError(
        f"export needs the onnx package ({error}); install it with: pip install 'graphnet[onnx]'"
    ) from None

DEFAULT_OPSET = 17
"""The opset written without ``--opset`` (the first with LayerNormalization)."""

OLDEST_OPSET = 13
"""The oldest opset graphnet writes (the first whose Softmax normalizes one axis)."""

ELEMENT_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}


def _first_opset(op_type: str, domain: str) -> int | None:
    """The first opset defining ``op_type``, or None when onnx does not know it."""
    versions = _SCHEMAS.get((domain, op_type))
    return min(versions) if versions else None


_SCHEMAS: dict[tuple[str, str], list[int]] = {}
for _schema in onnx.defs.get_all_schemas_with_history():
    _SCHEMAS.setdefault((_schema.domain, _schema.name), []).append(int(_schema.since_version))


class ExportContext:
    """What a layer's ``to_onnx(ctx, inputs, params)`` writes its part of the graph with.

    ``ctx.node(op_type, inputs, **attributes)`` adds one ONNX node and returns the name of its
    output; ``ctx.constant(array)`` adds an initializer in the spec's dtype and returns its
    name (``ctx.ints(values)``: an int64 one, for shapes and axes). ``ctx.opset`` is the opset
    being written, ``ctx.dtype`` the spec's numpy dtype, ``ctx.input_shapes`` and
    ``ctx.output_shape`` the node's per-sample shapes (no batch axis), ``ctx.name`` its name and
    ``ctx.arrays`` its parameters and buffers as arrays (``params`` holds their tensor names).
    """

    def __init__(self, opset: int, dtype: np.dtype[Any]) -> None:
        self.opset = opset
        self.dtype = dtype
        self.element_type = ELEMENT_TYPES[dtype]
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.name = ""
        self.label = ""
        self.input_shapes: tuple[Shape, ...] = ()
        self.output_shape: Shape = ()
        self.arrays: dict[str, Array] = {}
        self._used: set[str] = set()

    def _fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self._used:
            k += 1
            name = f"{base}_{k}"
        self._used.add(name)
        return name

    def reserve(self, name: str) -> None:
        """Keep ``name`` (a graph input or output) from being given to anything else."""
        self._used.add(name)

    def node(self, op_type: str, inputs: Sequence[str], domain: str = "", **attributes: Any) -> str:
        """Add an ``op_type`` node reading ``inputs`` (tensor names; "" for an omitted optional
        input), with ``attributes``; returns the name of its (first) output."""
        first = _first_opset(op_type, domain)
        if first is None:
            raise GraphnetError(f"{self.label}: {op_type!r} is no ONNX operator")
        if domain == "" and first > self.opset:
            raise GraphnetError(
                f"{self.label}: its export uses {op_type}, which needs opset {first} or newer; "
                f"export with opset {first} or newer"
            )
        output = self._fresh(f"{self.name}/{op_type}")
        self.nodes.append(
            helper.make_node(
                op_type, list(inputs), [output], name=output, domain=domain or None, **attributes
            )
        )
        return output

    def constant(self, array: Any) -> str:
        """An initializer holding ``array`` in the spec's dtype; returns its name."""
        return self._initializer(np.asarray(array, dtype=self.dtype), "const")

    def ints(self, values: Any) -> str:
        """An int64 initializer (shapes, axes, indices); returns its name."""
        return self._initializer(np.asarray(values, dtype=np.int64), "ints")

    def float64(self, array: Any, kind: str = "const") -> str:
        """A float64 initializer, whatever the spec's dtype (``data.normalize``'s statistics)."""
        return self._initializer(np.asarray(array, dtype=np.float64), kind)

    def _initializer(self, array: Array, kind: str, name: str | None = None) -> str:
        name = self._fresh(name or f"{self.name}/{kind}")
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def param(self, key: str, array: Array) -> str:
        """A parameter (``<node>/<param>``) as an initializer under its own key."""
        return self._initializer(np.asarray(array, dtype=self.dtype), "param", key)

    def cast(self, name: str, to: int) -> str:
        return self.node("Cast", [name], to=to)


class _Params(Mapping[str, str]):
    """A node's parameters by name -> initializer names, each made when a layer first reads
    it (a layer that folds a buffer into a constant leaves no unused initializer)."""

    def __init__(self, ctx: ExportContext, prefix: str) -> None:
        self.ctx, self.prefix, self.arrays = ctx, prefix, ctx.arrays
        self.names: dict[str, str] = {}

    def __getitem__(self, key: str) -> str:
        if key not in self.names:
            self.names[key] = self.ctx.param(self.prefix + key, self.arrays[key])
        return self.names[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.arrays)

    def __len__(self) -> int:
        return len(self.arrays)


def _check_outputs(network: Network) -> list[str]:
    """The inputs the outputs need, in the spec's order; refuses outputs that read a target."""
    graph = network.graph
    targets: dict[str, str] = {}
    for loss in graph.losses:
        for ref in loss.inputs[1:]:
            if ref in graph.inputs:
                targets.setdefault(ref, loss.type)
    for output in graph.outputs:
        for name in sorted(ancestors(graph, [output]) & set(targets)):
            raise DataError(
                f"output {output!r} depends on input {name!r}, a target of loss "
                f"{targets[name]!r}; an exported model computes its outputs from the inputs "
                "of a prediction only"
            )
        if output in graph.inputs:
            raise DataError(f"output {output!r} is a graph input, not a node: nothing to export")
    needed = ancestors(graph, graph.outputs)
    return [name for name in graph.inputs if name in needed]


def _missing_to_onnx(network: Network, nodes: Sequence[Node]) -> None:
    for node in nodes:
        if not callable(getattr(network.layers[node.name], "to_onnx", None)):
            raise PluginError(
                f"node {node.name!r} ({node.type}) cannot be exported: its layer has no "
                f"to_onnx method (plugin {node.caller.package})",
                node.caller.where,
            )


def build_model(network: Network, opset: int | None = None) -> onnx.ModelProto:
    """The ONNX model of a trained network (its parameters and normalizer as they are)."""
    opset = DEFAULT_OPSET if opset is None else opset
    newest = onnx.defs.onnx_opset_version()
    if not OLDEST_OPSET <= opset <= newest:
        raise GraphnetError(
            f"opset {opset}: graphnet exports opsets {OLDEST_OPSET} to {newest} "
            f"(the newest the installed onnx knows)"
        )
    graph = network.graph
    dtype = network.dtype
    needed_inputs = _check_outputs(network)
    needed = ancestors(graph, graph.outputs)
    nodes = [node for node in graph.nodes if node.name in needed]
    _missing_to_onnx(network, nodes)

    ctx = ExportContext(opset, dtype)
    for name in [*needed_inputs, *graph.outputs]:
        ctx.reserve(name)
    norm = network.normalizer
    tensors: dict[str, str] = {}
    inputs = []
    for name in needed_inputs:
        inputs.append(
            helper.make_tensor_value_info(name, ctx.element_type, ["batch", *graph.inputs[name]])
        )
        tensors[name] = name
        if name in norm.shift:  # (x - shift) / scale in float64, as Network.predict
            ctx.name, ctx.label = name, f"input {name!r} (data.normalize)"
            x = ctx.cast(name, TensorProto.DOUBLE)
            x = ctx.node("Sub", [x, ctx.float64(norm.shift[name], "shift")])
            x = ctx.node("Div", [x, ctx.float64(norm.scale[name], "scale")])
            tensors[name] = ctx.cast(x, ctx.element_type)

    arrays = network.arrays()
    for node in nodes:
        layer = network.layers[node.name]
        ctx.name, ctx.label = node.name, node.caller.label
        ctx.input_shapes = tuple(graph.shapes[ref] for ref in node.inputs)
        ctx.output_shape = node.shape
        prefix = f"{node.name}/"
        ctx.arrays = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        params = _Params(ctx, prefix)
        node_inputs = [tensors[ref] for ref in node.inputs]
        out = node.caller.call("to_onnx", layer.to_onnx, ctx, node_inputs, params)  # type: ignore[attr-defined]
        if not isinstance(out, str):
            raise node.caller.wrong("to_onnx", f"returned {type(out).__name__}, not a tensor name")
        tensors[node.name] = out

    outputs = []
    named: set[str] = set(needed_inputs)  # tensors that are graph inputs or outputs already
    for name in graph.outputs:
        ctx.name, ctx.label = name, f"output {name!r}"
        y = tensors[name]
        target = norm.targets.get(name)
        if target is not None and target in norm.shift:  # y · scale + shift in float64
            y = ctx.cast(y, TensorProto.DOUBLE)
            y = ctx.node("Mul", [y, ctx.float64(norm.scale[target], "scale")])
            y = ctx.node("Add", [y, ctx.float64(norm.shift[target], "shift")])
            y = ctx.cast(y, ctx.element_type)
        _name_output(ctx, y, name, named)
        tensors = {k: name if v == y else v for k, v in tensors.items()}
        named.add(name)
        outputs.append(
            helper.make_tensor_value_info(name, ctx.element_type, ["batch", *graph.shapes[name]])
        )

    onnx_graph = helper.make_graph(
        ctx.nodes, graph.spec.name or "graphnet", inputs, outputs, ctx.initializers
    )
    model = helper.make_model(
        onnx_graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="graphnet"
    )
    model.ir_version = _ir_version(opset)
    return model


def _ir_version(opset: int) -> int:
    """The oldest IR version that carries ``opset`` (onnx's table), so older runtimes read it."""
    versions = [int(row[1]) for row in helper.VERSION_TABLE if int(row[2]) >= opset]
    return min(versions, default=int(onnx.IR_VERSION))


def _name_output(ctx: ExportContext, tensor: str, name: str, named: set[str]) -> None:
    """Make the tensor ``tensor`` be the graph output ``name``: renamed where a node of this
    export produced it, else (a graph input, an output already) through an Identity node."""
    if tensor in named or not any(tensor in n.output for n in ctx.nodes):
        ctx.nodes.append(helper.make_node("Identity", [tensor], [name], name=f"{name}/Identity"))
        return
    for n in ctx.nodes:
        for field in (n.input, n.output):
            for i, value in enumerate(field):
                if value == tensor:
                    field[i] = name


def write_model(network: Network, path: str | Path, opset: int | None = None) -> onnx.ModelProto:
    """Write the ONNX model of ``network`` to ``path`` (atomically) and return it."""
    model = build_model(network, opset)
    write_output(Path(path), model.SerializeToString(), "ONNX model")
    return model
