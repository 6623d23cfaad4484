"""graphnet: train neural networks that are written down, not programmed.

A spec file describes a network as a graph of named layer nodes; plugins supply every layer,
loss, optimizer, data source, metric and learning-rate schedule; the executor trains it with
numpy.
"""

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
