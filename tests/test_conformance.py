"""One table over the registry: every built-in plugin of the five kinds behaves as the engine
expects. Layers and losses pass graphnet.testing's checks; optimizers update the arrays they are
handed in place, keep float32 and resume to the same bits; data sources give arrays keyed by
input with samples on axis 0, the same for the same seed; metrics give a finite float.

A new built-in is covered the moment it is registered: a type without an entry in the tables
below is checked with no options (layers: per-sample inputs of shape [4], two of them where it
takes any number), and a type that needs options or files fails until it gets an entry. Only
types of the ``graphnet`` package are checked, so that third-party plugins installed beside it
cannot change this suite (they run graphnet.testing in their own).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import built_in, built_ins

from graphnet.registry import KINDS
from graphnet.testing import check_layer, check_loss

Example = tuple[dict[str, Any], list[tuple[int, ...]], list[Any] | None]

LAYER_EXAMPLES: dict[str, list[Example]] = {
    "dense": [
        ({"units": 3}, [(4,)], None),
        ({"units": 2, "bias": False}, [(2, 3)], None),
        ({"units": 3, "init": "uniform"}, [(5,)], None),
    ],
    "dropout": [({"rate": 0.5}, [(6,)], None), ({"rate": 0.0}, [(3,)], None)],
    "add": [({}, [(3,), (3,)], None), ({}, [(2, 2), (2, 2), (2, 2)], None)],
    "concat": [({}, [(2,), (3,)], None), ({}, [(2, 1), (2, 3), (2, 2)], None)],
    "softmax": [({}, [(4,)], None), ({}, [(2, 3)], None)],
    "multiply": [({}, [(3,), (3,)], None), ({}, [(2, 2), (2, 2), (2, 2)], None)],
    "leaky_relu": [({}, [(4,)], None), ({"slope": 0.2}, [(2, 3)], None)],
    "conv2d": [
        ({"filters": 2, "kernel": 3}, [(5, 5, 2)], None),
        ({"filters": 3, "kernel": [2, 3], "stride": 2, "padding": "same"}, [(5, 6, 2)], None),
        ({"filters": 2, "kernel": 3, "padding": "same"}, [(4, 4, 1)], None),
        ({"filters": 2, "kernel": 1, "bias": False, "init": "he_uniform"}, [(3, 3, 3)], None),
    ],
    "maxpool2d": [({}, [(4, 4, 2)], None), ({"pool": [3, 2], "stride": 1}, [(5, 4, 2)], None)],
    "avgpool2d": [({}, [(5, 4, 2)], None), ({"pool": 3, "stride": [1, 2]}, [(4, 5, 2)], None)],
    "global_avgpool2d": [({}, [(3, 4, 2)], None)],
    "flatten": [({}, [(2, 3, 2)], None)],
    "reshape": [({"shape": [3, -1]}, [(2, 3, 2)], None), ({"shape": [6]}, [(2, 3)], None)],
    "batchnorm": [({}, [(4,)], None), ({"momentum": 0.5}, [(3, 3, 2)], None)],
    "layernorm": [({}, [(4,)], None), ({"eps": 1e-3}, [(2, 5)], None)],
    "embedding": [({"vocab": 5, "units": 3}, [(4,)], [[[0, 4, 2, 2], [1, 1, 3, 0], [4, 0, 0, 2]]])],
}

_rng = np.random.default_rng(7)
LOSS_EXAMPLES: dict[str, list[Example]] = {
    "cross_entropy": [
        ({}, [(4,), (1,)], [_rng.standard_normal((5, 4)), [[0], [3], [1], [2], [3]]]),
        ({}, [(3,), (3,)], [_rng.standard_normal((4, 3)), np.eye(3)[[0, 2, 1, 1]]]),
        ({}, [(3,), (3,)], None),  # soft targets: the target gets a gradient too
    ],
    "bce": [({}, [(3,), (3,)], [_rng.standard_normal((4, 3)), _rng.random((4, 3))])],
}


def _cases(kind: str, table: dict[str, list[Example]]) -> list[Any]:
    cases = []
    for name, entry in built_ins(kind).items():
        default: Example = ({}, [(4,)] * (getattr(entry.cls, "arity", 1) or 2), None)
        for i, example in enumerate(table.get(name, [default])):
            cases.append(pytest.param(entry.cls, *example, id=f"{name}-{i}"))
    return cases


@pytest.mark.parametrize(("cls", "options", "shapes", "inputs"), _cases("layer", LAYER_EXAMPLES))
def test_layer_conforms(cls: Any, options: dict[str, Any], shapes: list[Any], inputs: Any) -> None:
    """Shapes, finite-difference gradients, float32 and purity of every registered layer."""
    worst = check_layer(cls, options, shapes, inputs=inputs)
    assert worst < 1e-5


@pytest.mark.parametrize(("cls", "options", "shapes", "inputs"), _cases("loss", LOSS_EXAMPLES))
def test_loss_conforms(cls: Any, options: dict[str, Any], shapes: list[Any], inputs: Any) -> None:
    """Finite-difference gradients, float32 and purity of every registered loss."""
    worst = check_loss(cls, options, shapes, inputs=inputs)
    assert worst < 1e-5


def test_every_kind_is_in_the_table() -> None:
    """Every kind of plugin has built-ins, and a test covers each kind (below; schedules in
    tests/test_testing_kit.py, through check_schedule)."""
    assert set(KINDS) == {"layer", "loss", "optimizer", "data source", "metric", "schedule"}
    for kind in KINDS:
        assert built_ins(kind), kind


# -- optimizers --------------------------------------------------------------------------------

OPTIMIZER_EXAMPLES: dict[str, list[dict[str, Any]]] = {
    "sgd": [
        {},
        {"lr": 0.1, "momentum": 0.9},
        {"momentum": 0.5, "nesterov": True, "weight_decay": 0.1},
    ],
    "adam": [{}, {"lr": 0.01, "weight_decay": 0.1}],
}


def _optimizer_cases() -> list[Any]:
    return [
        pytest.param(entry.cls, options, id=f"{name}-{i}")
        for name, entry in built_ins("optimizer").items()
        for i, options in enumerate(OPTIMIZER_EXAMPLES.get(name, [{}]))
    ]


def _params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "dense/W": rng.standard_normal((3, 2)).astype(np.float32),
        "dense/b": rng.standard_normal(2).astype(np.float32),
    }


def _grads(rng: np.random.Generator, steps: int) -> list[dict[str, np.ndarray]]:
    return [_params(rng) for _ in range(steps)]


def _copied(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {key: np.array(value, copy=True) for key, value in arrays.items()}


@pytest.mark.parametrize(("cls", "options"), _optimizer_cases())
def test_optimizer_updates_the_given_arrays_in_place_and_keeps_float32(
    cls: Any, options: dict[str, Any]
) -> None:
    """``step`` changes the very arrays it is handed (the engine's parameter buffers), keeps
    them float32, and its state is a dict of arrays, float32 where it holds floats."""
    rng = np.random.default_rng(0)
    params = _params(rng)
    handed = dict(params)
    before = _copied(params)
    optimizer = cls(options)
    state = optimizer.init_state(params)
    for grads in _grads(rng, 3):
        optimizer.step(params, grads, state)
    assert params.keys() == before.keys()
    for key, array in params.items():
        assert array is handed[key], f"{key} was replaced, not updated in place"
        assert array.dtype == np.float32, f"{key} became {array.dtype}"
        assert not np.array_equal(array, before[key]), f"{key} did not change"
        assert np.isfinite(array).all(), key
    assert isinstance(state, dict)
    for key, value in state.items():
        assert isinstance(key, str), key
        assert isinstance(value, np.ndarray), f"state {key!r} is a {type(value).__name__}"
        if np.issubdtype(value.dtype, np.floating):
            assert value.dtype == np.float32, f"state {key!r} is {value.dtype}"


@pytest.mark.parametrize(("cls", "options"), _optimizer_cases())
def test_optimizer_resumes_from_a_copy_of_its_state_to_the_same_bits(
    cls: Any, options: dict[str, Any]
) -> None:
    """Two steps after a checkpoint give the same bits whether the optimizer went on or a new
    one started from copies of the parameters and the state (what ``--resume`` does)."""
    rng = np.random.default_rng(1)
    params = _params(rng)
    first, *later = _grads(rng, 3)
    optimizer = cls(options)
    state = optimizer.init_state(params)
    optimizer.step(params, first, state)
    saved_params, saved_state = _copied(params), copy.deepcopy(state)
    for grads in later:
        optimizer.step(params, grads, state)

    restored = cls(options)
    for grads in later:
        restored.step(saved_params, grads, saved_state)
    for key in params:
        assert params[key].tobytes() == saved_params[key].tobytes(), key
    assert state.keys() == saved_state.keys()
    for key in state:
        assert state[key].tobytes() == saved_state[key].tobytes(), f"state {key!r}"


# -- data sources ------------------------------------------------------------------------------

# options, the files a test writes first (name -> writer), and the input names it yields
Files = dict[str, Callable[[Path], None]]
DataExample = tuple[dict[str, Any], Files, set[str]]


def _csv(path: Path) -> None:
    path.write_text("a,b,c\n0.1,0.2,1\n0.3,0.4,0\n0.5,0.6,1\n", encoding="utf-8")


def _npz(path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(path, features=rng.random((5, 2)), y=rng.random((5, 1)))


DATA_EXAMPLES: dict[str, list[DataExample]] = {
    "synthetic": [
        ({"function": function, "samples": 7}, {}, {"x", "y"})
        for function in ("product", "xor", "spirals", "blobs")
    ],
    "csv": [
        ({"path": "t.csv", "columns": {"x": ["a", "b"], "y": ["c"]}}, {"t.csv": _csv}, {"x", "y"})
    ],
    "npz": [
        ({"path": "t.npz"}, {"t.npz": _npz}, {"features", "y"}),
        ({"path": "t.npz", "arrays": {"x": "features"}}, {"t.npz": _npz}, {"x", "y"}),
    ],
}


def _data_cases() -> list[Any]:
    return [
        pytest.param(entry.cls, *example, id=f"{name}-{i}")
        for name, entry in built_ins("data source").items()
        for i, example in enumerate(DATA_EXAMPLES.get(name, [({}, {}, set())]))
    ]


@pytest.mark.parametrize(("cls", "options", "files", "names"), _data_cases())
def test_data_source_gives_arrays_by_input_samples_first_and_seeded(
    cls: Any, options: dict[str, Any], files: Files, names: set[str], tmp_path: Path
) -> None:
    """``load`` gives one array per input name, all with the samples along axis 0 (as many in
    each), and the same arrays again for the same seed."""
    for name, write in files.items():
        write(tmp_path / name)
    source = cls(options)
    arrays = source.load(tmp_path, np.random.default_rng(3))
    again = cls(options).load(tmp_path, np.random.default_rng(3))
    assert names <= set(arrays), f"inputs {sorted(names - set(arrays))} are missing"
    samples = {name: np.asarray(arrays[name]).shape[:1] for name in names}
    assert len(set(samples.values())) == 1, f"different sample counts: {samples}"
    for name in names:
        array = arrays[name]
        assert isinstance(array, np.ndarray), f"{name} is a {type(array).__name__}"
        assert array.ndim >= 1 and len(array) > 0, f"{name} has shape {array.shape}"
        assert np.issubdtype(array.dtype, np.number), f"{name} is {array.dtype}"
        assert array.tobytes() == again[name].tobytes(), f"{name} differs for the same seed"


# -- metrics -----------------------------------------------------------------------------------

_m = np.random.default_rng(5)
MetricExample = tuple[np.ndarray, np.ndarray]
METRIC_BATCHES: list[MetricExample] = [
    (_m.standard_normal((6, 1)), _m.integers(0, 2, (6, 1)).astype(np.float64)),  # logit, 0/1
    (_m.standard_normal((6, 3)), np.eye(3)[_m.integers(0, 3, 6)]),  # scores, one-hot
    (_m.standard_normal((1, 2)).astype(np.float32), np.eye(2, dtype=np.float32)[[1]]),  # float32
]
METRIC_EXAMPLES: dict[str, list[MetricExample]] = {
    "auc": METRIC_BATCHES[:1],  # binary ROC AUC: one logit against 0/1 targets only
    "accuracy": [
        *METRIC_BATCHES,
        (_m.standard_normal((5, 4)), np.array([[0], [3], [1], [2], [2]])),
    ],
}


def _metric_cases() -> list[Any]:
    return [
        pytest.param(entry.cls, *batch, id=f"{name}-{i}")
        for name, entry in built_ins("metric").items()
        for i, batch in enumerate(METRIC_EXAMPLES.get(name, METRIC_BATCHES))
    ]


@pytest.mark.parametrize(("cls", "prediction", "target"), _metric_cases())
def test_metric_gives_a_finite_float_for_a_batch(
    cls: Any, prediction: np.ndarray, target: np.ndarray
) -> None:
    """``compute`` of a batch is a plain finite float, leaves its inputs alone, and is the same
    when asked again."""
    before = prediction.copy(), target.copy()
    value = cls({}).compute(prediction, target)
    assert type(value) is float, f"compute returned a {type(value).__name__}"
    assert np.isfinite(value)
    assert np.array_equal(prediction, before[0]) and np.array_equal(target, before[1])
    assert cls({}).compute(prediction, target) == value


# -- the checks themselves -----------------------------------------------------------------------


def test_check_layer_catches_a_wrong_gradient() -> None:
    """check_layer fails on a layer whose backward is off by 1%, naming parameter and index."""
    dense = built_in("layer", "dense")

    class Off(dense):  # type: ignore[misc, valid-type]
        def backward(self, params: Any, cache: Any, grad: Any) -> Any:
            d_inputs, d_params = super().backward(params, cache, grad)
            return d_inputs, {**d_params, "b": d_params["b"] * 1.01}

    with pytest.raises(
        AssertionError,
        match=r"parameter 'b' at index \(\d+,\): backward gives .* finite differences give",
    ):
        check_layer(Off, {"units": 2}, [(3,)])


def test_check_layer_catches_mutation_and_upcast() -> None:
    """check_layer fails on a layer that changes its input in place, or returns float64 for float32."""
    relu = built_in("layer", "relu")

    class Mutates(relu):  # type: ignore[misc, valid-type]
        def forward(self, params: Any, inputs: Any, training: bool) -> Any:
            out, cache = super().forward(params, inputs, training)
            inputs[0][...] = 0
            return out, cache

    class Upcasts(relu):  # type: ignore[misc, valid-type]
        def forward(self, params: Any, inputs: Any, training: bool) -> Any:
            out, cache = super().forward(params, inputs, training)
            return out.astype(np.float64), cache

    with pytest.raises(AssertionError, match=r"input 0 \(in forward\) was modified in place"):
        check_layer(Mutates, {}, [(3,)])
    with pytest.raises(AssertionError, match="float32 forward output is float64"):
        check_layer(Upcasts, {}, [(3,)])


def test_check_loss_catches_a_wrong_gradient() -> None:
    """check_loss fails on a loss whose gradient has the wrong scale."""
    mse = built_in("loss", "mse")

    class Summed(mse):  # type: ignore[misc, valid-type]
        def backward(self, cache: Any) -> Any:
            return [g * 2 for g in super().backward(cache)]

    with pytest.raises(AssertionError, match="gradient of mse input 0 at index"):
        check_loss(Summed, {}, [(2,), (2,)])
