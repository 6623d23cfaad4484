"""Finite checks of the arrays that enter the engine (data sets, inputs to predict): the first
sample that is not finite, and whether the data held NaN or Inf or a value the spec's dtype
cannot hold."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from graphnet.base import Array


def first_non_finite(array: Array, chunk: int = 4096) -> int | None:
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


def non_finite(raw: Any, array: Array) -> str | None:
    """``sample N holds ...`` for the first sample of ``array`` (``raw`` cast to the spec's
    dtype) that is not finite: NaN or Inf, or a value too large for the dtype."""
    bad = first_non_finite(array)
    if bad is None:
        return None
    overflow = raw.dtype.kind in "iuf" and np.isfinite(np.asarray(raw[bad], float)).all()
    what = f"a value too large for {array.dtype} (the spec's dtype)" if overflow else "NaN or Inf"
    return f"sample {bad} holds {what}"
