"""The one way to call plugin code.

A plugin is foreign code. Every call the engine makes into one (creating it, ``init_params``,
``forward``, ``backward``, a loss, a metric, an optimizer step) goes through a :class:`Caller`,
which turns whatever the plugin raises into an error naming what the plugin is in the spec
(node, loss, metric or optimizer), the method, where the spec writes it, and the package the
plugin came from. A plugin that raises, or returns what its contract forbids, is a
:class:`~graphnet.errors.PluginFailure` (exit status 1); a :class:`~graphnet.GraphnetError` it
raises on purpose (a ``DataError`` for a label that is no class id) keeps its own class and
gains the same context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from graphnet.errors import GraphnetError, PluginFailure

T = TypeVar("T")


@dataclass(frozen=True)
class Caller:
    """Calls into one plugin use: ``label`` is what the spec makes of it (``node 'hidden'
    (dense)``, ``loss 'mse'``), ``where`` its place in the spec, ``package`` its origin."""

    label: str
    where: str | None
    package: str

    def call(self, method: str, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)``, with any exception turned into an error naming this plugin."""
        try:
            return function(*args)
        except Exception as error:
            raise self.failed(method, error) from error

    def failed(self, method: str, error: BaseException) -> GraphnetError:
        """The error to raise for ``error``, raised by this plugin's ``method``."""
        if isinstance(error, GraphnetError):  # said on purpose: keep it, say where if it doesn't
            return error if error.where else error.add_context(self.label, where=self.where)
        if isinstance(error, MemoryError):  # sizes the spec asks for, not a bug of the plugin
            return GraphnetError(
                f"{self.label}: {method} ran out of memory ({error}); the sizes the spec asks "
                "for are too large for this machine",
                self.where,
            )
        return PluginFailure(
            f"{self.label}: {method} failed: {type(error).__name__}: {error}{self.origin}",
            self.where,
        )

    def number(self, method: str, value: Any) -> float:
        """``value``, returned by ``method``, as a float; anything else is the plugin's fault."""
        try:
            return float(value)
        except (TypeError, ValueError):
            raise self.wrong(method, f"returned {type(value).__name__}, not a number") from None

    def wrong(self, method: str, what: str) -> PluginFailure:
        """An error for a ``method`` that returned ``what`` it must not (said by the caller)."""
        return PluginFailure(f"{self.label}: {method} {what}{self.origin}", self.where)

    @property
    def origin(self) -> str:
        return f" (plugin {self.package})"
