"""The one error hierarchy of graphnet.

Every error a user can cause is a :class:`GraphnetError`; the command line turns it into a
message and an exit status in one place. ``where`` says where the problem is (``file:line:
spec.path``, a data file and column, a weights key) and is printed before the message.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable


class GraphnetError(Exception):
    """Base of every error a bad spec, data file, option or plugin can cause.

    On its way up an error gains context (what was being done, where) through
    :meth:`add_context`; what was said first is never edited.
    """

    exit_code = 2

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.before: list[str] = []  # outermost first: `loss 'mse' of out, y: `
        self.after: list[str] = []  # innermost first: ` (in epoch 3, batch 2)`

    def add_context(
        self, before: str | None = None, after: str | None = None, where: str | None = None
    ) -> GraphnetError:
        """Say what was being done (``before`` the message, ``after`` it) and where, unless a
        place is known already; returns the error itself, to be raised again."""
        if before:
            self.before.insert(0, before)
        if after:
            self.after.append(after)
        self.where = self.where or where
        return self

    @property
    def text(self) -> str:
        """The message with its context, without the place."""
        return "".join(f"{b}: " for b in self.before) + self.message + "".join(self.after)

    def __str__(self) -> str:
        return f"{self.where}: {self.text}" if self.where else self.text


class SpecError(GraphnetError):
    """A spec file that cannot be read or does not describe a valid network."""


class ShapeError(GraphnetError):
    """Shapes that do not fit: raised by ``Layer.output_shape`` and by shape inference."""


class PluginError(GraphnetError):
    """A plugin that cannot be loaded, is registered twice, or does not exist."""


class PluginFailure(PluginError):
    """Plugin code that raised or returned what its contract forbids while it ran: the message
    names the node (or loss, metric, optimizer), the method and the plugin's package."""

    exit_code = 1


class DataError(GraphnetError):
    """A data or weights file that is missing, malformed or does not match the spec.

    ``sample`` (optional) is the index of the sample at fault in the data set the raiser was
    given (``Loss.check_targets``); the engine turns it into the file and line when the data
    source can tell them (``DataSource.locate``)."""

    def __init__(self, message: str, where: str | None = None, sample: int | None = None) -> None:
        super().__init__(message, where)
        self.sample = sample


class TrainingError(GraphnetError):
    """A run that failed while training: it diverged, or a file could not be written."""

    exit_code = 1


class Interrupted(GraphnetError):
    """A run stopped by Ctrl-C (SIGINT, exit status 130) or SIGTERM (143) after its checkpoint."""

    def __init__(
        self, message: str, signal_number: int, where: str | None = None, complete: bool = False
    ) -> None:
        super().__init__(message, where)
        self.exit_code = 128 + signal_number
        self.complete = complete  # the signal came after the run's last epoch: nothing to resume


class GraphnetWarning(UserWarning):
    """Something that does not stop a run but is probably not what the user meant."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


_EXCERPT = reprlib.Repr()
_EXCERPT.maxlevel, _EXCERPT.maxstring, _EXCERPT.maxother = 3, 60, 60
_EXCERPT.maxlist = _EXCERPT.maxdict = _EXCERPT.maxtuple = 6


def excerpt(value: object) -> str:
    """A short ``repr`` of ``value`` for a message: long strings and deep or long containers
    are cut (``...``), so a message never expands a huge or deeply nested value."""
    return _EXCERPT.repr(value)
