"""The hooks a graphnet plugin implements.

Each hook takes no arguments and returns a list of classes (``graphnet_blocks``, a mapping of
block names to blocks). Built-in plugins implement them
exactly as third-party ones do; new arguments, if ever added, go at the end so that older
plugins keep working.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("graphnet")


@hookspec
def graphnet_layers() -> list[type[Any]]:  # type: ignore[empty-body]
    """Layers this plugin provides, each a subclass of :class:`graphnet.Layer`.

    :return: a list of layer classes, each with a unique ``type`` name.
    """


@hookspec
def graphnet_losses() -> list[type[Any]]:  # type: ignore[empty-body]
    """Losses this plugin provides, each a subclass of :class:`graphnet.Loss`.

    :return: a list of loss classes, each with a unique ``type`` name.
    """


@hookspec
def graphnet_optimizers() -> list[type[Any]]:  # type: ignore[empty-body]
    """Optimizers this plugin provides, each a subclass of :class:`graphnet.Optimizer`.

    :return: a list of optimizer classes, each with a unique ``type`` name.
    """


@hookspec
def graphnet_data_sources() -> list[type[Any]]:  # type: ignore[empty-body]
    """Data sources this plugin provides, each a subclass of :class:`graphnet.DataSource`.

    :return: a list of data-source classes, each with a unique ``type`` name.
    """


@hookspec
def graphnet_metrics() -> list[type[Any]]:  # type: ignore[empty-body]
    """Metrics this plugin provides, each a subclass of :class:`graphnet.Metric`.

    :return: a list of metric classes, each with a unique ``type`` name.
    """


@hookspec
def graphnet_schedules() -> list[type[Any]]:  # type: ignore[empty-body]
    """Learning-rate schedules this plugin provides, each a subclass of :class:`graphnet.Schedule`.

    :return: a list of schedule classes, each with a unique ``type`` name.
    """


@hookspec
def graphnet_blocks() -> dict[str, dict[str, Any]]:  # type: ignore[empty-body]
    """Reusable blocks this plugin publishes, in the spec's block format (optional).

    :return: a mapping of block names to blocks: ``{"residual": {"inputs": [...], "options":
        {...}, "nodes": [...], "output": ...}}``.
    """
