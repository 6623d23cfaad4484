"""The state a run can continue from: snapshots, the arrays of ``checkpoint.npz``, restoring
them, and what a resumed spec may not change.

A checkpoint holds the parameters (``param/<node>/<param>``), the optimizer state
(``state/<key>``), the number of the last complete epoch, the training generator's state and
the state of the training features that have some (``early_stopping/<key>``: its counters and
the best epoch's parameters), so a resumed run continues bit for bit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphnet.base import Array
from graphnet.errors import DataError
from graphnet.network import SPEC_DIR, Network
from graphnet.params import cut, shapes_of


@dataclass
class Snapshot:
    """The training state after ``epoch``."""

    epoch: int
    flat: Array  # the parameters, as the network's flat buffer
    buffers: Array  # the layers' buffers, likewise
    state: dict[str, Array]
    rng: Mapping[str, Any]
    extra: dict[str, Array] = field(default_factory=dict)  # saved under their own keys


class Snapshots:
    """Takes snapshots into buffers kept for the purpose, so that a snapshot per epoch
    allocates nothing; each copy overwrites the previous one."""

    def __init__(self) -> None:
        self._kept: tuple[Array, Array, dict[str, Array], dict[str, Array]] | None = None

    def take(
        self,
        epoch: int,
        network: Network,
        state: dict[str, Array],
        rng: np.random.Generator,
        copy: bool = True,
        extra: dict[str, Array] | None = None,
    ) -> Snapshot:
        """The state now (the live arrays themselves with ``copy=False``, to be written
        before training goes on); ``extra``: more arrays to save under their own keys."""
        flat, buffers = network.params.flat, network.buffers.flat
        extra = extra or {}
        if copy:
            kept = self._kept
            if kept is None or kept[2].keys() != state.keys() or kept[3].keys() != extra.keys():
                kept = self._kept = (
                    np.empty_like(flat),
                    np.empty_like(buffers),
                    {k: np.array(v, copy=True) for k, v in state.items()},
                    {k: np.array(v, copy=True) for k, v in extra.items()},
                )
            np.copyto(kept[0], flat)
            np.copyto(kept[1], buffers)
            for live, copies in ((state, kept[2]), (extra, kept[3])):
                for key, value in live.items():
                    np.copyto(copies[key], value)
            flat, buffers, state, extra = kept
        return Snapshot(epoch, flat, buffers, state, rng.bit_generator.state, extra)


class Rollback:
    """The state after the last complete epoch, kept so that a run failing in the next epoch
    can still checkpoint it.

    An epoch of several steps changes the parameters before it can fail, so everything is
    copied (:class:`Snapshots`). An epoch of one step with no plugin to call after it (``live``)
    changes the parameters and the optimizer state only by its step, applied once the loss and
    the signals are checked: until then the live arrays are the state kept, and only the
    layers' buffers, which its forward pass updates, are copied. The training generator's
    state is read at the start of such an epoch only while something draws from it: once two
    epochs in a row have started from the same state, the last one read stands, and a failure
    checks that it still does."""

    def __init__(self, live: bool) -> None:
        self.live = live
        self.epoch: int | None = None  # the epoch kept; None: nothing (checkpoint.npz holds it)
        self._snapshots = Snapshots()
        self._copy: Snapshot | None = None
        self._steps = 0  # the optimizer steps applied when the epoch was kept
        self._buffers: Array | None = None
        self._rng: Mapping[str, Any] | None = None  # the generator's state when last read
        self._rng_moves = True  # whether it moved between the last two reads

    def keep(
        self,
        epoch: int,
        network: Network,
        state: dict[str, Array],
        rng: np.random.Generator,
        steps: int,
        extra: dict[str, Array] | None = None,
    ) -> None:
        """Keep the state now, after ``epoch`` (``steps`` optimizer steps applied so far)."""
        self.epoch = epoch
        if not self.live:
            self._copy = self._snapshots.take(epoch, network, state, rng, True, extra)
            return
        self._steps = steps
        buffers = network.buffers.flat
        if buffers.size:
            if self._buffers is None:
                self._buffers = np.empty_like(buffers)
            np.copyto(self._buffers, buffers)
        if self._rng_moves:
            now = rng.bit_generator.state
            self._rng_moves = now != self._rng
            self._rng = now

    def forget(self) -> None:
        """Keep nothing: checkpoint.npz holds the state after the last complete epoch."""
        self.epoch = None

    def snapshot(
        self,
        network: Network,
        state: dict[str, Array],
        rng: np.random.Generator,
        steps: int,
        extra: dict[str, Array] | None = None,
    ) -> Snapshot | None:
        """The state kept, if there is one and it still holds: a live one no longer does once
        an optimizer step has been applied since (``steps`` so far), or once something has
        drawn from the generator since its state was last read."""
        if self.epoch is None:
            return None
        if not self.live:
            return self._copy
        if steps != self._steps:
            return None
        if not self._rng_moves and rng.bit_generator.state != self._rng:
            return None
        assert self._rng is not None
        buffers = self._buffers if self._buffers is not None else network.buffers.flat
        return Snapshot(self.epoch, network.params.flat, buffers, state, self._rng, extra or {})


def checkpoint_arrays(snapshot: Snapshot, network: Network) -> dict[str, Any]:
    """A snapshot as the arrays of ``checkpoint.npz``: parameters and buffers as ``param/``."""
    arrays: dict[str, Any] = {}
    for flat, like in ((snapshot.flat, network.params), (snapshot.buffers, network.buffers)):
        arrays.update({f"param/{k}": v for k, v in cut(flat, shapes_of(like)).items()})
    arrays.update({f"state/{k}": v for k, v in snapshot.state.items()})
    arrays.update(network.normalizer.arrays())  # data/<input>/shift, scale
    # where the spec read its data (UTF-8 bytes), so that `graphnet evaluate` finds it again
    arrays[SPEC_DIR] = np.frombuffer(str(network.graph.spec.base_dir).encode(), dtype=np.uint8)
    arrays["epoch"] = np.array(snapshot.epoch)
    arrays["rng"] = np.array(json.dumps(snapshot.rng))
    arrays.update(snapshot.extra)
    return arrays


def restore(
    arrays: Mapping[str, Any],
    network: Network,
    state: dict[str, Array],
    rng: np.random.Generator,
    where: str,
    load_extra: Callable[[Mapping[str, Any], str], None] | None = None,
) -> int:
    """Load a checkpoint's arrays into the network, the optimizer state and the generator
    (and, with ``load_extra``, whatever else it holds); the number of the epoch it was taken
    after."""
    params = {k[len("param/") :]: v for k, v in arrays.items() if k.startswith("param/")}
    try:
        network.load_weights(params, where)
    except DataError as error:
        raise error.add_context("param/ (the parameters)") from None
    for key, target in state.items():
        saved = arrays.get(f"state/{key}")
        what = f"state/{key} (the optimizer's state)"
        if saved is None:
            raise DataError(f"{what}: missing", where)
        saved = np.asarray(saved)
        if saved.shape != np.shape(target):
            raise DataError(
                f"{what}: shape {list(saved.shape)}, the optimizer needs {list(np.shape(target))}",
                where,
            )
        if saved.dtype.kind not in "biuf":
            raise DataError(f"{what}: {saved.dtype} array, expected numbers", where)
        if not np.isfinite(saved).all():
            raise DataError(f"{what}: holds NaN or Inf", where)
        state[key] = np.array(saved, dtype=np.asarray(target).dtype)
    if load_extra is not None:
        load_extra(arrays, where)
    try:
        rng.bit_generator.state = json.loads(str(arrays["rng"]))
        return int(arrays["epoch"])
    except (KeyError, ValueError, TypeError) as error:
        raise DataError(f"checkpoint is damaged: {error}", where) from None


def differences(saved: Any, current: Any, path: str = "") -> list[str]:
    """Where a resolved spec differs from a run's saved one, ``train.epochs`` aside."""
    if isinstance(saved, dict) and isinstance(current, dict):
        out = []
        for key in dict.fromkeys([*saved, *current]):
            sub = f"{path}.{key}" if path else str(key)
            if sub == "train.epochs":
                continue
            if key not in saved or key not in current:
                out.append(f"{sub} is {'new' if key not in saved else 'gone'}")
            else:
                out += differences(saved[key], current[key], sub)
        return out
    if isinstance(saved, list) and isinstance(current, list) and len(saved) == len(current):
        return [
            d
            for i, (a, b) in enumerate(zip(saved, current, strict=True))
            for d in differences(a, b, f"{path}[{i}]")
        ]
    return [] if saved == current else [f"{path}: {saved!r} in the run, {current!r} now"]
