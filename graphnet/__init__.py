"""graphnet: train neural networks that are written down, not programmed.

A spec file describes a network as a graph of named layer nodes; plugins supply every layer,
loss, optimizer, data source, metric and learning-rate schedule; the executor trains it with
numpy.

The names below load on first use (PEP 562), so ``import graphnet`` and ``graphnet --help``
import neither numpy nor pydantic until something needs them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graphnet.api import build, evaluate, export_onnx, load_run, load_spec, sweep, train
    from graphnet.base import DataSource, Layer, Loss, Metric, Optimizer, Schedule
    from graphnet.errors import (
        DataError,
        GraphnetError,
        GraphnetWarning,
        PluginError,
        PluginFailure,
        ShapeError,
        SpecError,
        TrainingError,
    )
    from graphnet.network import Network
    from graphnet.registry import hookimpl
    from graphnet.spec import Spec

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "DataSource",
    "GraphnetError",
    "GraphnetWarning",
    "Layer",
    "Loss",
    "Metric",
    "Network",
    "Optimizer",
    "PluginError",
    "PluginFailure",
    "Schedule",
    "ShapeError",
    "Spec",
    "SpecError",
    "TrainingError",
    "build",
    "evaluate",
    "export_onnx",
    "hookimpl",
    "load_run",
    "load_spec",
    "sweep",
    "train",
]

# the module that defines each public name
_HOMES = {
    "api": ("build", "evaluate", "export_onnx", "load_run", "load_spec", "sweep", "train"),
    "base": ("DataSource", "Layer", "Loss", "Metric", "Optimizer", "Schedule"),
    "errors": (
        *("DataError", "GraphnetError", "GraphnetWarning", "PluginError", "PluginFailure"),
        *("ShapeError", "SpecError", "TrainingError"),
    ),
    "network": ("Network",),
    "registry": ("hookimpl",),
    "spec": ("Spec",),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'graphnet' has no attribute {name!r}")
    value = getattr(import_module(f"graphnet.{home}"), name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
