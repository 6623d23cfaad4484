"""The data set of a run: seeded streams, loading and checking the data, the validation split.

Randomness comes from one seed split into independent streams (data, validation split,
training), so changing the data does not change the split or the shuffling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from graphnet.base import Array, DataSource
from graphnet.calls import Caller
from graphnet.errors import DataError, SpecError
from graphnet.spec import Spec

STREAMS = ("data", "split", "train")


def streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators for the data, the validation split and training (shuffling,
    dropout); each node's initial parameters have a generator of their own (``init_rng``)."""
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {
        name: np.random.default_rng(child) for name, child in zip(STREAMS, children, strict=True)
    }


def data_source(spec: Spec) -> tuple[DataSource, Caller]:
    """A new instance of the spec's data source, and the :class:`Caller` to call it through."""
    if spec.data is None:
        raise SpecError("the spec has no `data:` section; training needs one", spec.where())
    caller = Caller(f"data source {spec.data.source!r}", spec.where(("data",)), spec.data.package)
    return spec.data.make(caller), caller


def load_data(spec: Spec, rng: np.random.Generator) -> dict[str, Array]:
    """The spec's data set, checked against its inputs and cast to its dtype."""
    where = spec.where(("data",))
    source, caller = data_source(spec)
    arrays = caller.call("load", source.load, spec.base_dir, rng)
    if not isinstance(arrays, Mapping):
        raise caller.wrong("load", f"returned {type(arrays).__name__}, not a dict of arrays")
    dtype = np.dtype(spec.dtype)
    out: dict[str, Array] = {}
    count: tuple[str, int] | None = None
    for name, input_spec in spec.inputs.items():
        if name not in arrays:
            given = ", ".join(sorted(arrays)) or "nothing"
            raise DataError(f"the data has no array for input {name!r} (it gives: {given})", where)
        raw = np.asarray(arrays[name])
        if not (np.issubdtype(raw.dtype, np.number) or raw.dtype == bool) or np.iscomplexobj(raw):
            raise DataError(f"input {name!r}: the data is {raw.dtype}, not real numbers", where)
        shape = tuple(input_spec.shape)
        if raw.ndim != len(shape) + 1 or raw.shape[1:] != shape:
            raise DataError(
                f"input {name!r}: per-sample shape {list(raw.shape[1:])} in the data "
                f"(array {list(raw.shape)}), the spec says {list(shape)}",
                where,
            )
        array = np.ascontiguousarray(raw, dtype=dtype)
        if not len(array):
            raise DataError(f"the data set is empty: input {name!r} has no samples", where)
        bad = _first_non_finite(array)
        if bad is not None:
            overflow = np.isfinite(np.asarray(raw[bad], dtype=np.float64)).all()
            what = f"a value too large for {dtype} (the spec's dtype)" if overflow else "NaN or Inf"
            raise DataError(f"input {name!r}: sample {bad} holds {what}", where)
        if count is not None and len(array) != count[1]:
            raise DataError(
                f"input {name!r} has {len(array)} samples, input {count[0]!r} has {count[1]}", where
            )
        count = (name, len(array))
        array.flags.writeable = False  # a plugin that writes into the data fails, named
        out[name] = array
    if count is None or count[1] == 0:
        raise DataError("the data set is empty", where)
    return out


def _first_non_finite(array: Array, chunk: int = 4096) -> int | None:
    """The first sample holding NaN or Inf, if any. A float64 sum settles the common case with
    no temporary array; only when it is not finite are the samples scanned, a chunk at a time."""
    if math.isfinite(float(array.sum(dtype=np.float64))):
        return None
    rows = array.reshape(len(array), -1)
    for start in range(0, len(rows), chunk):
        bad = np.flatnonzero(~np.isfinite(rows[start : start + chunk]).all(axis=1))
        if bad.size:
            return start + int(bad[0])
    return None  # the sum overflowed, but every value is finite


def split(
    arrays: dict[str, Array], fraction: float, rng: np.random.Generator
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Hold out ``fraction`` of the samples, chosen at random, for validation."""
    n = len(next(iter(arrays.values())))
    if fraction <= 0:
        return arrays, {}
    n_val = max(1, round(n * fraction))
    if n_val >= n:
        raise DataError(f"{fraction} of {n} samples leaves none to train on")
    order = rng.permutation(n)
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    return {k: v[train] for k, v in arrays.items()}, {k: v[val] for k, v in arrays.items()}
