"""``data.normalize``: per-feature ``(x - shift) / scale``, fitted on the training split only.

A :class:`Normalizer` is held by a network (``Network.normalizer``): ``Network.predict`` applies
it to the inputs and undoes it on every output trained against a normalized target, so a
prediction comes back in the data's own units. Its arrays are saved in ``weights.npz`` and the
checkpoint as ``data/<input>/shift`` and ``data/<input>/scale``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphnet.base import Array
from graphnet.errors import DataError
from graphnet.spec import Spec, label_inputs

PREFIX = "data/"


def normalized_outputs(spec: Spec) -> dict[str, str]:
    """Each output of a regression loss whose target is normalized -> that target input."""
    labels = label_inputs(spec)
    out: dict[str, str] = {}
    normalize = spec.data.normalize if spec.data is not None else {}
    for loss in spec.loss:
        prediction, target = loss.inputs[0], loss.inputs[-1]
        if target in normalize and target not in labels and prediction not in spec.inputs:
            out.setdefault(prediction, target)
    return out


@dataclass
class Normalizer:
    """Shift and scale per normalized input; ``targets``: output -> the input it is trained
    against, whose normalization :meth:`undo` reverses on that output."""

    shift: dict[str, Array] = field(default_factory=dict)
    scale: dict[str, Array] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)

    @classmethod
    def fit(cls, spec: Spec, train: Mapping[str, Array]) -> Normalizer:
        """The statistics of ``spec``'s ``data.normalize`` on the training split ``train``:
        standard: mean and population standard deviation; minmax: min and max - min; a
        constant feature gets scale 1."""
        shift: dict[str, Array] = {}
        scale: dict[str, Array] = {}
        for name, how in (spec.data.normalize if spec.data is not None else {}).items():
            x = np.asarray(train[name], dtype=np.float64)
            if how == "standard":
                low, size = x.mean(axis=0), x.std(axis=0)
            else:
                low, size = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
            shift[name], scale[name] = low, np.where(size > 0, size, 1.0)
        return cls(shift, scale, normalized_outputs(spec))

    @classmethod
    def from_arrays(cls, spec: Spec, arrays: Mapping[str, Any], where: str) -> Normalizer:
        """The normalizer saved in ``arrays`` (a weights file's), for ``spec``."""
        shift: dict[str, Array] = {}
        scale: dict[str, Array] = {}
        for name in spec.data.normalize if spec.data is not None else {}:
            for part, into in (("shift", shift), ("scale", scale)):
                key = f"{PREFIX}{name}/{part}"
                if key not in arrays:
                    raise DataError(f"no {key!r}: the spec normalizes input {name!r}", where)
                into[name] = np.asarray(arrays[key], dtype=np.float64)
        return cls(shift, scale, normalized_outputs(spec))

    def arrays(self) -> dict[str, Array]:
        """``data/<input>/shift`` and ``data/<input>/scale``, as ``weights.npz`` holds them."""
        out: dict[str, Array] = {}
        for name in self.shift:
            out[f"{PREFIX}{name}/shift"] = self.shift[name]
            out[f"{PREFIX}{name}/scale"] = self.scale[name]
        return out

    def apply(self, arrays: Mapping[str, Array]) -> dict[str, Array]:
        """``arrays`` with every normalized input as ``(x - shift) / scale`` (new arrays, in
        each array's own dtype); the others as they are."""
        out = dict(arrays)
        for name, shift in self.shift.items():
            if name in out:
                x = out[name]
                dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
                out[name] = ((x - shift) / self.scale[name]).astype(dtype)
        return out

    def undo(self, outputs: Mapping[str, Array]) -> dict[str, Array]:
        """``outputs`` in their targets' units: ``y · scale + shift`` on each output trained
        against a normalized target."""
        out = dict(outputs)
        for output, target in self.targets.items():
            if output in out and target in self.shift:
                y = out[output]
                out[output] = (y * self.scale[target] + self.shift[target]).astype(y.dtype)
        return out
