"""The data set of a run: seeded streams, loading and checking the data, class names, the
validation and test splits and ``data.normalize``.

Randomness comes from one seed split into independent streams (data, validation split,
training, test split), so changing the data does not change the split or the shuffling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphnet.base import Array, DataSource
from graphnet.calls import Caller
from graphnet.errors import DataError, GraphnetError, SpecError
from graphnet.finite import non_finite
from graphnet.normalize import Normalizer
from graphnet.spec import DataSpec, Spec, SplitSpec

STREAMS = ("data", "split", "train", "test")


def streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators for the data, the validation split, training (shuffling,
    dropout) and the test split; each node's initial parameters have a generator of their own
    (``init_rng``). Adding a stream at the end changes none of the others."""
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {
        name: np.random.default_rng(child) for name, child in zip(STREAMS, children, strict=True)
    }


def data_source(spec: Spec, split: str | None = None) -> tuple[DataSource, Caller]:
    """A new instance of the spec's data source (or of the ``validation``/``test`` split's own
    source), and the :class:`Caller` to call it through."""
    if spec.data is None:
        raise SpecError("the spec has no `data:` section; training needs one", spec.where())
    section: DataSpec | SplitSpec = spec.data
    path: tuple[str, ...] = ("data",)
    if split is not None:
        own = getattr(spec.data, split)
        assert isinstance(own, SplitSpec), split
        section, path = own, ("data", split)
    caller = Caller(f"data source {section.source!r}", spec.where(path), section.package)
    source: DataSource = section.make(caller)
    source.text_inputs = frozenset(n for n, s in spec.inputs.items() if s.classes is not None)
    return source, caller


def load_raw(
    spec: Spec, rng: np.random.Generator, split: str | None = None
) -> tuple[DataSource, Mapping[str, Any]]:
    """The spec's data source (or a split's own) and what it returns, unchecked."""
    source, caller = data_source(spec, split)
    arrays = caller.call("load", source.load, spec.base_dir, rng)
    if not isinstance(arrays, Mapping):
        raise caller.wrong("load", f"returned {type(arrays).__name__}, not a dict of arrays")
    return source, arrays


def loaded_data(spec: Spec) -> dict[str, dict[str, Array]]:
    """Every data set :func:`prepare` loads for ``spec`` (the main one under ``""``, a split's
    own under its name), as its source returns them: what a sweep sends to its workers."""
    rng = streams(spec.seed)["data"]
    assert spec.data is not None
    out = {"": {k: np.asarray(v) for k, v in load_raw(spec, rng)[1].items()}}
    for name in ("test", "validation"):  # prepare's order: the data stream is shared
        if isinstance(getattr(spec.data, name), SplitSpec):
            out[name] = {k: np.asarray(v) for k, v in load_raw(spec, rng, name)[1].items()}
    return out


def load_data(
    spec: Spec,
    rng: np.random.Generator,
    split: str | None = None,
    loaded: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Array]:
    """The spec's data set (or a split's own), checked against its inputs and losses and cast
    to its dtype; class names become class ids (``classes: auto`` is resolved in place from the
    main data set: the sorted names). ``loaded`` holds what :func:`loaded_data` read already."""
    where = spec.where(("data",) if split is None else ("data", split))
    if loaded is not None:
        source, arrays = data_source(spec, split)[0], loaded[split or ""]
    else:
        source, arrays = load_raw(spec, rng, split)
    out: dict[str, Array] = {}
    count: tuple[str, int] | None = None
    for name in spec.inputs:
        if name not in arrays:
            given = ", ".join(sorted(arrays)) or "nothing"
            raise DataError(f"the data has no array for input {name!r} (it gives: {given})", where)
        raw = np.asarray(arrays[name])
        array = encode(spec, name, raw, source, where)
        if not len(array):
            raise DataError(f"the data set is empty: input {name!r} has no samples", where)
        problem = non_finite(raw, array)
        if problem is not None:
            raise DataError(f"input {name!r}: {problem}", where)
        if count is not None and len(array) != count[1]:
            raise DataError(
                f"input {name!r} has {len(array)} samples, input {count[0]!r} has {count[1]}", where
            )
        count = (name, len(array))
        array.flags.writeable = False  # a plugin that writes into the data fails, named
        out[name] = array
    if count is None or count[1] == 0:
        raise DataError("the data set is empty", where)
    check_targets(spec, out, source, where)
    return out


def encode(spec: Spec, name: str, raw: Array, source: DataSource | None, where: str) -> Array:
    """One input's array as the network takes it: class names as class ids, ``(n,)`` as
    ``(n, 1)`` for an input of shape ``[1]``, the spec's dtype; errors name the spec line."""
    input_spec = spec.inputs[name]
    shape = tuple(input_spec.shape)
    if raw.ndim == 1 and shape == (1,):
        raw = raw.reshape(len(raw), 1)
    if raw.dtype.kind in "US" and input_spec.classes is not None:
        raw = _class_ids(spec, name, raw, source)
    if not (np.issubdtype(raw.dtype, np.number) or raw.dtype == bool) or np.iscomplexobj(raw):
        raise DataError(f"input {name!r}: the data is {raw.dtype}, not real numbers", where)
    if raw.ndim != len(shape) + 1 or raw.shape[1:] != shape:
        raise DataError(
            f"input {name!r}: per-sample shape {list(raw.shape[1:])} in the data "
            f"(array {list(raw.shape)}), the spec says {list(shape)}",
            spec.where(("inputs", name, "shape")),
        )
    return np.ascontiguousarray(raw, dtype=np.dtype(spec.dtype))


def _class_ids(spec: Spec, name: str, names: Array, source: DataSource | None) -> Array:
    """Class names -> their positions in the input's ``classes`` (``auto``: set here to the
    sorted names); a name not in the list is an error naming its file, line and value."""
    input_spec = spec.inputs[name]
    names = np.char.strip(names.astype(str))
    if input_spec.classes == "auto":
        input_spec.classes = sorted({str(v) for v in names.ravel()})
    classes = list(input_spec.classes or [])
    lookup = {c: i for i, c in enumerate(classes)}
    ids = np.empty(names.shape, dtype=np.float64)
    for index, value in np.ndenumerate(names):
        if value not in lookup:
            sample = index[0]
            raise DataError(
                f"input {name!r}: label {str(value)!r} of sample {sample} is not one of its "
                f"classes ({', '.join(classes)})",
                (source.locate(sample) if source is not None else None)
                or spec.where(("inputs", name, "classes")),
            )
        ids[index] = lookup[value]
    return ids


def check_targets(
    spec: Spec, arrays: Mapping[str, Array], source: DataSource | None, where: str
) -> None:
    """Every loss's ``check_targets`` on the data set, and the label classes against the
    logits; an error names the file and line of the sample when the source can tell."""
    from graphnet.graph import build_graph  # the shapes of the predictions

    graph = build_graph(spec)
    for loss in graph.losses:
        _check_class_count(spec, graph.shapes, loss.inputs, loss.section.plugin, loss.index)
        instance = loss.make()
        instance.check_shapes([graph.shapes[ref] for ref in loss.inputs])
        targets = [arrays.get(ref) if ref in spec.inputs else None for ref in loss.inputs]
        label = f"loss {loss.type!r} of {', '.join(loss.inputs)}"
        try:
            instance.check_targets(targets)
        except GraphnetError as error:
            sample = getattr(error, "sample", None)
            place = source.locate(sample) if source is not None and sample is not None else None
            error.where = place or error.where or loss.caller.where
            raise error.add_context(before=label) from None
        except Exception as error:
            raise loss.caller.failed("check_targets", error) from None


def _check_class_count(
    spec: Spec, shapes: Mapping[str, tuple[int, ...]], refs: tuple[str, ...], plugin: type, i: int
) -> None:
    """A label's ``classes`` list as long as the classes its loss tells apart."""
    applies = getattr(plugin, "applies", None)
    label = refs[-1]
    classes = spec.inputs[label].classes if label in spec.inputs else None
    if not applies or not isinstance(classes, list):
        return
    logits = shapes[refs[0]]
    wanted = 2 if applies == "sigmoid" else (logits[-1] if logits else 1)
    if len(classes) != wanted:
        raise SpecError(
            f"input {label!r} has {len(classes)} classes ({', '.join(classes)}), but loss "
            f"{i} tells {wanted} apart ({refs[0]} has shape {list(logits)})",
            spec.where(("inputs", label, "classes")),
        )


def split(
    arrays: dict[str, Array],
    fraction: float,
    rng: np.random.Generator,
    labels: Array | None = None,
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Hold out ``fraction`` of the samples, chosen at random: (the rest, the held out).

    With ``labels`` (one row per sample), each class keeps its share: ``fraction`` of every
    class's samples (rounded) is held out."""
    n = len(next(iter(arrays.values())))
    if fraction <= 0:
        return arrays, {}
    if labels is None:
        n_val = max(1, round(n * fraction))
        if n_val >= n:
            raise DataError(f"{fraction} of {n} samples leaves none to train on")
        order = rng.permutation(n)
        val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    else:
        _, classes = np.unique(labels.reshape(n, -1), axis=0, return_inverse=True)
        held = []
        for c in range(int(classes.max()) + 1):
            members = np.flatnonzero(classes.ravel() == c)
            held.append(rng.permutation(members)[: round(len(members) * fraction)])
        val = np.sort(np.concatenate(held))
        if not len(val) or len(val) >= n:
            raise DataError(f"{fraction} of each class of {n} samples leaves no split")
        train = np.setdiff1d(np.arange(n), val)
    return {k: v[train] for k, v in arrays.items()}, {k: v[val] for k, v in arrays.items()}


@dataclass
class Dataset:
    """The splits of a run, normalized, and the normalizer fitted on the training split."""

    train: dict[str, Array]
    validation: dict[str, Array] = field(default_factory=dict)
    test: dict[str, Array] = field(default_factory=dict)
    normalizer: Normalizer = field(default_factory=Normalizer)


def prepare(
    spec: Spec,
    rngs: Mapping[str, np.random.Generator],
    loaded: Mapping[str, Mapping[str, Any]] | None = None,
) -> Dataset:
    """Load the data (or take ``loaded``, from :func:`loaded_data`), hold out the test and
    validation splits (fractions, or sources of their own), fit ``data.normalize`` on the
    training split and apply it to every split."""
    data = load_data(spec, rngs["data"], loaded=loaded)
    assert spec.data is not None
    parts: dict[str, dict[str, Array]] = {}
    rest = data
    for name, stream in (("test", "test"), ("validation", "split")):
        setting = getattr(spec.data, name)
        if isinstance(setting, SplitSpec):
            parts[name] = load_data(spec, rngs["data"], name, loaded)
            continue
        stratify = spec.data.stratify
        try:
            rest, parts[name] = split(
                rest, setting, rngs[stream], rest[stratify] if stratify else None
            )
        except DataError as error:
            raise error.add_context(where=spec.where(("data", name))) from None
    normalizer = Normalizer.fit(spec, rest)
    return Dataset(
        normalizer.apply(rest),
        normalizer.apply(parts["validation"]) if parts["validation"] else {},
        normalizer.apply(parts["test"]) if parts["test"] else {},
        normalizer,
    )
