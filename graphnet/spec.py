"""The spec format as pydantic models, and ``validate``: plain spec data -> :class:`Spec`.

Validation happens in two passes: the structure of the spec (unknown keys, types, ranges), then
each node's, loss's, optimizer's and data source's inline options against that plugin's own
``Options`` model. Errors carry ``file:line: spec.path``.
"""

from __future__ import annotations

import difflib
import math
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from graphnet.calls import Caller
from graphnet.errors import SpecError, excerpt, suggest
from graphnet.registry import Registry, get_registry
from graphnet.specfile import Source
from graphnet.yamlio import SpecPath

NAME_LENGTH = 100
Name = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$", max_length=NAME_LENGTH)
]
# an expanded block node: `body.fc1`, `body.3.fc1` (written names never hold a dot)
NodeName = Annotated[
    str,
    StringConstraints(
        pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*$", max_length=10 * NAME_LENGTH
    ),
]
NAME_RULE = (
    "a name starts with a letter or '_' and holds only letters, digits, '_' and '-' "
    f"(at most {NAME_LENGTH} characters)"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class _Plugged(_Strict):
    """A section naming a plugin (``type:`` or ``source:``) with that plugin's options inline."""

    kind: ClassVar[str] = ""
    key: ClassVar[str] = "type"
    options: dict[str, Any] = Field(default_factory=dict)
    _options_model: BaseModel | None = PrivateAttr(default=None)
    _plugin: type[Any] | None = PrivateAttr(default=None)
    _package: str = PrivateAttr(default="")

    @model_validator(mode="before")
    @classmethod
    def _collect_options(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        fixed = set(cls.model_fields) - {"options"}
        inline = {k: v for k, v in value.items() if k not in fixed}
        return {**{k: v for k, v in value.items() if k in fixed}, "options": inline}

    @property
    def plugin_type(self) -> str:
        return str(getattr(self, self.key))

    def resolve(self, registry: Registry, source: Source, path: SpecPath) -> None:
        """Find the plugin and validate the inline options with its own model."""
        entry = registry.entry(self.kind, self.plugin_type, source.where((*path, self.key)))
        cls = entry.cls
        setattr(self, self.key, cls.type.lower())
        model: type[BaseModel] = cls.Options
        known = {name for name, f in model.model_fields.items()} | {
            f.alias for f in model.model_fields.values() if f.alias
        }
        keys = known | (set(type(self).model_fields) - {"options"})  # a typo of `weight` too
        for option in self.options:
            if option not in known:
                listing = ", ".join(sorted(known)) or "none"
                raise SpecError(
                    f"unknown option {option!r} for {self.kind} type {cls.type!r}"
                    f"{suggest(str(option), keys)}; its options: {listing}",
                    source.where((*path, option)),
                )
        try:
            self._options_model = model.model_validate(self.options, strict=True)
        except ValidationError as error:
            raise _spec_error(error, source, path) from None
        self._plugin = cls
        self._package = entry.package

    @property
    def plugin(self) -> type[Any]:
        assert self._plugin is not None, "spec not validated against plugins"
        return self._plugin

    @property
    def package(self) -> str:
        """The package (or ``--plugin`` file) the plugin came from."""
        return self._package

    def make(self, caller: Caller) -> Any:
        """A new instance of the plugin with its own copy of the validated options: every
        layer, loss, optimizer and data source the engine uses is created here, and none
        shares state with another (a schedule may change an optimizer's ``lr``)."""
        return caller.call("__init__", self.plugin, self.options_model.model_copy(deep=True))

    @property
    def options_model(self) -> BaseModel:
        assert self._options_model is not None, "spec not validated against plugins"
        return self._options_model

    def to_dict(self) -> dict[str, Any]:
        fixed = self.model_dump(mode="json", exclude={"options"}, exclude_none=True)
        options = (
            self._options_model.model_dump(mode="json") if self._options_model else self.options
        )
        return {**fixed, **options}


class InputSpec(_Strict):
    shape: list[Annotated[int, Field(ge=1)]]
    classes: Literal["auto"] | Annotated[list[str], Field(min_length=2)] | None = None


class NodeSpec(_Plugged):
    kind: ClassVar[str] = "layer"
    name: NodeName
    type: str
    inputs: Annotated[list[str], Field(min_length=1)]

    _as_list = field_validator("inputs", mode="before")(_as_list)


class LossSpec(_Plugged):
    kind: ClassVar[str] = "loss"
    type: str
    inputs: Annotated[list[str], Field(min_length=1)]
    weight: Annotated[float, Field(ge=0)] = 1.0

    _as_list = field_validator("inputs", mode="before")(_as_list)


class OptimizerSpec(_Plugged):
    kind: ClassVar[str] = "optimizer"
    type: str


class SplitSpec(_Plugged):
    """A data source of its own for the validation or test split (``{source: csv, ...}``)."""

    kind: ClassVar[str] = "data source"
    key: ClassVar[str] = "source"
    source: str


Fraction = Annotated[float, Field(ge=0, lt=1)]


class ScheduleSpec(_Plugged):
    kind: ClassVar[str] = "schedule"
    type: str


class EarlyStoppingSpec(_Strict):
    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    patience: Annotated[int, Field(ge=1)] = 10
    min_delta: Annotated[float, Field(ge=0)] = 0.0
    restore_best: bool = True


class DataSpec(_Plugged):
    kind: ClassVar[str] = "data source"
    key: ClassVar[str] = "source"
    source: str
    validation: Fraction | SplitSpec = 0.0
    test: Fraction | SplitSpec = 0.0
    stratify: Name | None = None
    normalize: dict[Name, Literal["standard", "minmax"]] = Field(default_factory=dict)

    def splits(self) -> list[tuple[str, SplitSpec]]:
        """The validation and test splits that are data sources of their own."""
        return [
            (name, split)
            for name in ("validation", "test")
            if isinstance(split := getattr(self, name), SplitSpec)
        ]

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for name, split in self.splits():
            out[name] = split.to_dict()
        for key, default in (("test", 0.0), ("normalize", {})):
            if out.get(key) == default:
                del out[key]  # spec.yaml shows the keys a spec uses
        return out


class TrainSpec(_Strict):
    epochs: Annotated[int, Field(ge=0)] = 1
    batch_size: Annotated[int, Field(ge=1)] | None = None
    shuffle: bool = True
    optimizer: OptimizerSpec = Field(default_factory=lambda: OptimizerSpec(type="sgd"))
    metrics: list[str] = Field(default_factory=list)
    checkpoint_every: Annotated[float, Field(ge=0)] = 30.0
    lr_schedule: ScheduleSpec | None = None
    early_stopping: EarlyStoppingSpec | None = None
    clip_grad_norm: Annotated[float, Field(gt=0)] | None = None


class Spec(_Strict):
    """A validated spec: the network, its data, its losses and how to train it."""

    name: Name | None = None  # names the run folder: never a path
    seed: Annotated[int, Field(ge=0)] = 0
    dtype: Literal["float64", "float32"] = "float64"
    data: DataSpec | None = None
    inputs: Annotated[dict[Name, InputSpec], Field(min_length=1)]
    nodes: Annotated[list[NodeSpec], Field(min_length=1)]
    loss: Annotated[list[LossSpec], Field(min_length=1)]
    outputs: Annotated[list[str], Field(min_length=1)] | None = None
    train: TrainSpec = Field(default_factory=TrainSpec)

    _source: Source = PrivateAttr(default_factory=lambda: Source("<spec>"))
    _data_dir: Path | None = PrivateAttr(default=None)
    _registry: Registry | None = PrivateAttr(default=None)

    _as_list = field_validator("outputs", mode="before")(_as_list)

    @field_validator("loss", mode="before")
    @classmethod
    def _loss_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @property
    def source(self) -> Source:
        return self._source

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = get_registry()
        return self._registry

    @property
    def base_dir(self) -> Path:
        """The folder relative data paths are read from: the spec file's."""
        if self._data_dir is not None:
            return self._data_dir
        return Path(self._source.file).resolve().parent

    @base_dir.setter
    def base_dir(self, folder: Path) -> None:
        """A run folder's spec reads its data where the spec that trained it did."""
        self._data_dir = Path(folder)

    def where(self, path: SpecPath = ()) -> str:
        """``file:line: spec.path`` for a path inside this spec."""
        return self._source.where(path)

    def columns(self) -> list[str]:
        """The columns of ``metrics.csv``, in order: ``epoch``, ``loss``, ``val_loss`` (with
        validation), each metric and its ``val_`` twin (one per loss, ``<prediction>_<metric>``
        with several losses), ``lr`` (with a schedule), ``seconds``."""
        validation = self.data is not None and bool(self.data.validation)
        columns = ["epoch", "loss"] + (["val_loss"] if validation else [])
        for metric in self.train.metrics:
            for loss in self.loss:
                column = metric if len(self.loss) == 1 else f"{loss.inputs[0]}_{metric}"
                columns += [column] + ([f"val_{column}"] if validation else [])
        if self.train.lr_schedule is not None:
            columns.append("lr")
        return [*columns, "seconds"]

    def monitor(self) -> str:
        """The column whose best epoch a run reports: early stopping's ``monitor``, else
        ``val_loss`` with validation, else ``loss``."""
        if self.train.early_stopping is not None:
            return self.train.early_stopping.monitor
        return "val_loss" if "val_loss" in self.columns() else "loss"

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec as plain data (defaults filled, options inline), as saved in a run."""
        out: dict[str, Any] = {"name": self.name, "seed": self.seed, "dtype": self.dtype}
        if self.data is not None:
            out["data"] = self.data.to_dict()
        out["inputs"] = {k: v.model_dump(exclude_none=True) for k, v in self.inputs.items()}
        out["nodes"] = [node.to_dict() for node in self.nodes]
        out["loss"] = [loss.to_dict() for loss in self.loss]
        if self.outputs is not None:
            out["outputs"] = list(self.outputs)
        optional = ("lr_schedule", "early_stopping", "clip_grad_norm")  # absent when unset
        unset = {k for k in optional if getattr(self.train, k) is None}
        train = self.train.model_dump(mode="json", exclude={"optimizer", "lr_schedule", *unset})
        out["train"] = {**train, "optimizer": self.train.optimizer.to_dict()}
        if self.train.lr_schedule is not None:
            out["train"]["lr_schedule"] = self.train.lr_schedule.to_dict()
        return out


def _unwrap(annotation: Any) -> Any:
    """``Annotated[X, ...]`` -> X; ``X | None`` -> X."""
    while True:
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if origin is Annotated:
            annotation = args[0]
        elif origin in (typing.Union, types.UnionType):
            annotation = next((a for a in args if a is not type(None)), None)
        else:
            return annotation


def _fields_at(loc: Sequence[str | int]) -> list[str]:
    """The keys allowed in the spec section at ``loc``, for did-you-mean suggestions."""
    annotation: Any = Spec
    for part in loc:
        annotation = _unwrap(annotation)
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return []
            annotation = field.annotation
        elif origin in (list, dict):
            annotation = args[-1]
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [k for k in annotation.model_fields if k != "options"]
    return []


UNION_TAGS = ("constrained-float", "SplitSpec")  # data.validation, data.test: a number or a source


def _relevant(errors: list[Any]) -> list[Any]:
    """Errors of a value that may be a fraction or a data source: only the branch its type
    takes (a source for a mapping, else the number), without the branch's tag in the path."""
    out = []
    for error in errors:
        loc = tuple(error["loc"])
        tag = next((t for t in UNION_TAGS if t in loc), None)
        if tag is not None:
            at_branch = loc[-1] == tag
            if at_branch and (tag == "SplitSpec") != isinstance(error.get("input"), dict):
                continue
            error = {**error, "loc": tuple(p for p in loc if p != tag)}
        out.append(error)
    return out or errors


def _describe(error: Mapping[str, Any]) -> tuple[tuple[str | int, ...], str]:
    loc = tuple(part for part in error["loc"] if isinstance(part, int | str))
    kind = error["type"]
    if kind == "extra_forbidden":
        key = loc[-1]
        return loc, f"unknown key {key!r}{suggest(str(key), _fields_at(loc[:-1]))}"
    if kind == "missing":
        given = error.get("input")
        keys = list(given) if isinstance(given, dict) else []
        if isinstance(given, dict) and isinstance(given.get("options"), dict):
            keys += list(given["options"])  # a plugin section's inline keys
        close = difflib.get_close_matches(str(loc[-1]), [str(k) for k in keys], n=1)
        typo = f" (you wrote {close[0]!r}: a typo?)" if close else ""
        return loc[:-1], f"missing required key {loc[-1]!r}{typo}"
    if kind == "string_pattern_mismatch":
        return loc, f"{excerpt(error['input'])} is not a valid name: {NAME_RULE}"
    if kind == "string_too_long" and loc and loc[-1] == "name":
        return loc, f"{excerpt(error['input'])} is not a valid name: {NAME_RULE}"
    message = str(error["msg"])
    message = message[0].lower() + message[1:]
    return loc, f"{message}, got {excerpt(error['input'])}"


def _spec_error(error: ValidationError, source: Source, prefix: SpecPath = ()) -> SpecError:
    described = [_describe(e) for e in _relevant(list(error.errors()))]
    lines = [f"{source.where((*prefix, *loc))}: {message}" for loc, message in described]
    first_loc, first_message = described[0]
    if len(lines) == 1:
        return SpecError(first_message, source.where((*prefix, *first_loc)))
    return SpecError("\n".join(lines))


def default_name(stem: str) -> str:
    """A spec file's stem made a valid name: other characters become ``_``."""
    name = re.sub(r"[^A-Za-z0-9_\-]", "_", stem)[:NAME_LENGTH]
    return name if re.match(r"[A-Za-z_]", name) else f"_{name}"[:NAME_LENGTH]


def label_inputs(spec: Spec) -> dict[str, str]:
    """The graph inputs that are the target of a classification loss (one whose plugin says
    which function it ``applies``: softmax, sigmoid), each with that loss's type."""
    out: dict[str, str] = {}
    for loss in spec.loss:
        if getattr(loss.plugin, "applies", None) and loss.inputs[-1] in spec.inputs:
            out.setdefault(loss.inputs[-1], loss.type)
    return out


def _check_data_keys(spec: Spec) -> None:
    """``classes`` only on labels; ``stratify`` and ``normalize`` name inputs that fit them."""
    labels = label_inputs(spec)
    for name, input_spec in spec.inputs.items():
        if input_spec.classes is not None and name not in labels:
            raise SpecError(
                f"classes on input {name!r}, which is not the target of a classification loss "
                "(cross_entropy, bce); class names are read only for labels",
                spec.where(("inputs", name, "classes")),
            )
    if spec.data is None:
        return
    for key in spec.data.normalize:
        if key not in spec.inputs:
            raise SpecError(
                f"normalize: no input {key!r}{suggest(key, spec.inputs)}",
                spec.where(("data", "normalize", key)),
            )
        if key in labels:
            raise SpecError(
                f"normalize: input {key!r} is the label of loss {labels[key]!r}; labels are "
                "not normalized",
                spec.where(("data", "normalize", key)),
            )
    stratify = spec.data.stratify
    if stratify is not None and stratify not in spec.inputs:
        raise SpecError(
            f"stratify: no input {stratify!r}{suggest(stratify, spec.inputs)}",
            spec.where(("data", "stratify")),
        )


def validate(data: dict[str, Any], source: Source, registry: Registry) -> Spec:
    """Validate plain spec data: structure first, then every plugin's own options."""
    _string_keys(data, (), source)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as error:
        raise _spec_error(error, source) from None
    spec._source = source
    spec._registry = registry
    for i, node in enumerate(spec.nodes):
        expanded = i in source.origins and source.origins[i].instance is not None
        if "." in node.name and not expanded and not source.resolved:
            raise SpecError(
                f"{excerpt(node.name)} is not a valid name: {NAME_RULE}; the dot is reserved "
                "for the nodes of block instances",
                source.where(("nodes", i, "name")),
            )
    if spec.name is None:
        spec.name = default_name(Path(source.file).stem)
    sections: list[tuple[_Plugged, SpecPath]] = [
        (n, ("nodes", i)) for i, n in enumerate(spec.nodes)
    ]
    sections += [(loss, ("loss", i)) for i, loss in enumerate(spec.loss)]
    sections.append((spec.train.optimizer, ("train", "optimizer")))
    if spec.train.lr_schedule is not None:
        sections.append((spec.train.lr_schedule, ("train", "lr_schedule")))
    if spec.data is not None:
        sections.append((spec.data, ("data",)))
        sections += [(split, ("data", name)) for name, split in spec.data.splits()]
    for section, path in sections:
        section.resolve(registry, source, path)
    _check_data_keys(spec)
    for i, metric in enumerate(spec.train.metrics):
        cls = registry.get("metric", metric, source.where(("train", "metrics", i)))
        spec.train.metrics[i] = cls.type.lower()
    for path, value in _numbers(spec.to_dict(), ()):
        if not math.isfinite(value):
            raise SpecError(f"{value} is not a finite number", source.where(path))
    _check_training(spec, source)
    return spec


def _string_keys(value: Any, path: SpecPath, source: Source) -> None:
    """Refuse a key YAML read as something else than a string (``true:``, ``1:``)."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise SpecError(
                        f"the key {key!r} is read as {type(key).__name__}, not a string; "
                        f"quote it: '{key}'",
                        source.where(where, line_of=(*where, key)),
                    )
                stack.append((child, (*where, key)))
        elif isinstance(item, list):
            stack.extend((child, (*where, i)) for i, child in enumerate(item))


def _numbers(value: Any, path: SpecPath) -> Iterator[tuple[SpecPath, float]]:
    """Every float in resolved spec data, with its path."""
    if isinstance(value, float):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _numbers(item, (*path, i))


def _check_training(spec: Spec, source: Source) -> None:
    """What a schedule and early stopping need: an optimizer with ``lr``, a known column."""
    train = spec.train
    if train.lr_schedule is not None and "lr" not in train.optimizer.plugin.Options.model_fields:
        raise SpecError(
            f"a learning-rate schedule sets the optimizer's `lr`, and optimizer "
            f"{train.optimizer.type!r} has no `lr` option; remove train.lr_schedule or use an "
            "optimizer with one",
            source.where(("train", "lr_schedule")),
        )
    if train.early_stopping is not None:
        columns = [c for c in spec.columns() if c not in ("epoch", "seconds")]
        monitor = train.early_stopping.monitor
        if monitor not in columns:
            needs = ""
            if monitor.startswith("val_") and "val_loss" not in columns:
                needs = " (val_ columns need a validation split: data.validation)"
            raise SpecError(
                f"early stopping monitors {monitor!r}, which is not a column of metrics.csv"
                f"{suggest(monitor, columns)}; its columns: {', '.join(columns)}{needs}",
                source.where(("train", "early_stopping", "monitor")),
            )
