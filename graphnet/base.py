"""Base classes for the kinds of plugin: layers, losses, optimizers, data sources, metrics and
learning-rate schedules.

A plugin class names itself with ``type`` (what a spec writes in ``type:``), declares its inline
options as a nested pydantic ``Options`` model, and implements the methods of its kind. The
engine creates one instance per use with the validated options in ``self.options``.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

Shape = tuple[int, ...]
Array = np.ndarray


class NoOptions(BaseModel):
    """The options of a plugin that takes none."""

    model_config = ConfigDict(extra="forbid")


class Plugin:
    """What every plugin class has: a ``type`` name, an ``Options`` model and ``options``."""

    type: ClassVar[str] = ""
    Options: ClassVar[builtins.type[BaseModel]] = NoOptions

    def __init__(self, options: BaseModel | Mapping[str, Any] | None = None) -> None:
        if isinstance(options, BaseModel):
            self.options: Any = options
        else:
            self.options = self.Options.model_validate(dict(options or {}))

    @classmethod
    def summary(cls) -> str:
        """The first line of the class docstring, for listings."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


class Layer(Plugin):
    """A node of the graph: a differentiable function of its inputs and parameters.

    ``arity`` is the number of inputs it takes (``None`` for any number). Shapes are per
    sample, without the batch axis; arrays passed to ``forward`` carry the batch axis first.
    The engine sets ``self.rng`` (a seeded ``numpy.random.Generator``) before training, for
    layers that draw random numbers.
    """

    arity: ClassVar[int | None] = 1
    """The number of inputs the layer takes; ``None`` for any number."""

    buffers: ClassVar[tuple[str, ...]] = ()
    """Entries of ``init_params``' result that are state, not trained (running statistics):
    they take no gradient, the optimizer never sees them, ``forward`` may update them in place
    while ``training``, and they are saved, loaded and checkpointed with the parameters."""

    rng: np.random.Generator = np.random.default_rng(0)
    """The generator to draw random numbers from while training; the engine sets a seeded one
    that is checkpointed with the run."""

    # Engine hints (the plugin guide's "Engine hints"): optional, set by the engine before
    # training. A layer may use them to skip work; one that ignores them trains to the same bits.
    input_grads_needed: tuple[bool, ...] | None = None
    """Engine hint, one bool per input: False where nothing needs that input's gradient (a
    graph input), and ``backward`` may return None for it instead of an array. ``None`` (no hint:
    a layer used outside a network, by ``check_layer``) means every gradient is needed."""

    grad_out: Mapping[str, Array] | None = None
    """Engine hint: for each parameter name, an array of that parameter's shape and dtype that
    ``backward`` may write the parameter's gradient into (``np.matmul(..., out=...)``) and
    return, saving a copy. Its contents on entry are undefined. ``None``: no hint."""

    def output_shape(self, input_shapes: Sequence[Shape]) -> Sequence[int]:
        """The per-sample output shape; raise :class:`graphnet.ShapeError` when inputs don't fit."""
        return input_shapes[0]

    def init_params(
        self, input_shapes: Sequence[Shape], rng: np.random.Generator
    ) -> dict[str, Array]:
        """Fresh parameters, drawn from ``rng``; the engine casts them to the spec's dtype."""
        return {}

    def forward(
        self, params: Mapping[str, Array], inputs: Sequence[Array], training: bool
    ) -> tuple[Array, Any]:
        """The output for a batch and whatever ``backward`` needs (the cache)."""
        raise NotImplementedError

    def backward(
        self, params: Mapping[str, Array], cache: Any, grad: Array
    ) -> tuple[Sequence[Array | None], Mapping[str, Array]]:
        """Gradients of the loss for each input (in order) and each parameter, given ``grad``."""
        raise NotImplementedError

    # Optional, for `graphnet export` (the plugin guide's "Exporting a layer to ONNX"):
    # ``to_onnx(ctx, inputs, params) -> str`` writes the layer's ONNX nodes through
    # ``ctx.node(op_type, inputs, **attributes)`` and ``ctx.constant(array)`` and returns the
    # name of its output tensor. A layer without it cannot be exported; nothing else needs it.


class Loss(Plugin):
    """A scalar function of its inputs (usually ``[prediction, target]``), averaged over the batch."""

    arity: ClassVar[int | None] = 2
    """The number of inputs the loss takes; ``None`` for any number."""

    input_grads_needed: tuple[bool, ...] | None = None
    """Engine hint, one bool per input, as for layers: False where nothing needs that input's
    gradient (a target read from the data), and ``backward`` may return None for it. ``None``
    (no hint) means every gradient is needed. A loss that ignores it behaves the same."""

    applies: ClassVar[str | None] = None
    """The function the loss applies to its first input itself (``"softmax"`` for
    cross-entropy, ``"sigmoid"`` for binary cross-entropy), or None. The engine warns when a
    node of that type feeds the loss; and a loss that applies one is a classification loss:
    its target may have ``classes``, ``predict`` adds the class and ``evaluate --confusion``
    its confusion matrix."""

    def check_shapes(self, input_shapes: Sequence[Shape]) -> None:
        """Raise :class:`graphnet.ShapeError` when the inputs' per-sample shapes don't fit."""

    def check_targets(self, targets: Sequence[Array | None]) -> None:
        """Optional: raise :class:`graphnet.DataError` naming the sample (``sample 7: ...``)
        when the data cannot be this loss's targets (a class id out of range). ``targets`` has
        one entry per input of the loss: the whole data set's array where the input is a graph
        input, None where it is a node's output. Called once per data set before training and
        by ``graphnet validate``; the default accepts anything."""

    def forward(self, inputs: Sequence[Array]) -> tuple[Any, Any]:
        """The loss value (a scalar) and whatever ``backward`` needs."""
        raise NotImplementedError

    def backward(self, cache: Any) -> Sequence[Array | None]:
        """The gradient of the loss for each input, or ``None`` where an input takes none."""
        raise NotImplementedError


class Optimizer(Plugin):
    """Updates parameters in place from their gradients; its state is a dict of arrays.

    Engine hint: ``params`` and ``grads`` may carry a ``flat`` attribute, one contiguous array
    that every array of the mapping is a view of, in the mapping's order. Updating
    ``params.flat`` in place (with ``grads.flat``) updates every parameter at once. Check for it
    with ``getattr(params, "flat", None)`` on both; an optimizer that ignores it and iterates the
    mapping gives the same bits, as long as it computes the same thing element by element.
    """

    def init_state(self, params: Mapping[str, Array]) -> dict[str, Array]:
        """Fresh optimizer state (arrays only, so that it checkpoints)."""
        return {}

    def step(
        self, params: Mapping[str, Array], grads: Mapping[str, Array], state: dict[str, Array]
    ) -> None:
        """Update every array of ``params`` in place."""
        raise NotImplementedError


class DataSource(Plugin):
    """Loads the data set: one array per graph input, samples along the first axis."""

    def load(self, base_dir: Path, rng: np.random.Generator) -> dict[str, Array]:
        """Arrays keyed by input name; relative paths are relative to ``base_dir``."""
        raise NotImplementedError

    text_inputs: frozenset[str] = frozenset()
    """Engine hint: the inputs that have ``classes``, set before ``load`` and ``read_inputs``.
    A source may return an array of strings (class names) for them; the engine turns names
    into class ids. Any other input must be numbers."""

    def locate(self, sample: int) -> str | None:
        """Optional: where sample ``sample`` of the last ``load`` (or ``read_inputs``) is, as
        ``file:line``, for messages about it; None (the default) when unknown."""
        return None

    def read_inputs(self, path: Path, shapes: Mapping[str, Shape]) -> dict[str, Array] | None:
        """Optional: the inputs named in ``shapes`` (name -> per-sample shape) from ``path``, a
        file a user gives to ``graphnet predict``, read in this source's own layout (its column
        mapping, its array keys); or None for a file it does not read.

        On None, ``predict`` falls back to reading CSV columns ``<input>_<i>`` or NPZ arrays
        keyed by input name. The default reads nothing and returns None.
        """
        return None


class Metric(Plugin):
    """A number reported per epoch for each loss's prediction and target.

    A metric is one of two kinds:

    - A **batch metric** implements ``compute(prediction, target)``; the engine averages its
      value over the batches, weighted by their size. Right for means (MAE, accuracy).
    - An **accumulating metric** implements ``reset()``, ``update(prediction, target)`` and
      ``result()``: ``reset`` before each pass over a data set (an epoch's training batches,
      the validation set), ``update`` for each batch, ``result`` at the end. Right for a number
      that is not a mean over samples (RMSE, R², F1, AUC).

    ``accumulates`` says which kind a class is; it is True exactly when the class (or a base
    other than this one) overrides ``update``, unless the class sets it itself. An accumulating
    metric is reset when it is created, and its ``compute`` is its result on the one batch
    given (``reset``, ``update``, ``result``), so it discards what was accumulated before.
    """

    accumulates: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "accumulates" not in cls.__dict__:
            cls.accumulates = cls.update is not Metric.update

    def __init__(self, options: BaseModel | Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        if self.accumulates:
            self.reset()  # ready for its first update

    def compute(self, prediction: Array, target: Array) -> float:
        """The metric of one batch; the engine averages batches weighted by their size."""
        if not self.accumulates:
            raise NotImplementedError(
                f"metric {type(self).__name__} implements neither compute nor update"
            )
        self.reset()
        self.update(prediction, target)
        return self.result()

    def reset(self) -> None:
        """Forget every batch seen so far (an accumulating metric must implement it)."""
        raise NotImplementedError

    def update(self, prediction: Array, target: Array) -> None:
        """Take one batch into account; implementing it makes the metric accumulating."""
        raise NotImplementedError

    def result(self) -> float:
        """The metric over every batch since the last ``reset``."""
        raise NotImplementedError


class Schedule(Plugin):
    """The learning rate of each epoch, as a function of the epoch, the base rate and the history.

    ``lr`` is called before each epoch; epochs are numbered from 1, ``base_lr`` is the
    optimizer's own ``lr`` option, and ``history`` holds one record per epoch so far (dicts
    with the columns of ``metrics.csv``: ``history[-1]`` is epoch ``epoch - 1``'s, empty
    before the first). A schedule keeps no state of its own: what it needs to remember it
    reads again from ``history``, so that a resumed run gets the same rates as one that
    never stopped.
    """

    def lr(self, epoch: int, base_lr: float, history: Sequence[Mapping[str, Any]]) -> float:
        """The learning rate of epoch ``epoch``."""
        raise NotImplementedError
