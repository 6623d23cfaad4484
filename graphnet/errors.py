"""The one error hierarchy of graphnet.

Every error a user can cause is a :class:`GraphnetError`; the command line turns it into a
message and an exit status in one place. ``where`` says where the problem is (``file:line:
spec.path``, a data file and column, a weights key) and is printed before the message.
"""

from __future__ import annotations


class GraphnetError(Exception):
    """Base of every error a bad spec, data file, option or plugin can cause."""

    exit_code = 2

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class SpecError(GraphnetError):
    """A spec file that cannot be read or does not describe a valid network."""


class ShapeError(GraphnetError):
    """Shapes that do not fit: raised by ``Layer.output_shape`` and by shape inference."""


class PluginError(GraphnetError):
    """A plugin that cannot be loaded, is registered twice, or does not exist."""


class DataError(GraphnetError):
    """A data or weights file that is missing, malformed or does not match the spec."""


class TrainingError(GraphnetError):
    """A run that failed while training: it diverged, or a file could not be written."""

    exit_code = 1


class Interrupted(GraphnetError):
    """A run stopped by Ctrl-C (SIGINT, exit status 130) or SIGTERM (143) after its checkpoint."""

    def __init__(self, message: str, signal_number: int, where: str | None = None) -> None:
        super().__init__(message, where)
        self.exit_code = 128 + signal_number


class GraphnetWarning(UserWarning):
    """Something that does not stop a run but is probably not what the user meant."""
