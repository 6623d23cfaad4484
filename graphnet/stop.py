"""Stopping a run at a clean point on Ctrl-C (SIGINT) or SIGTERM."""

from __future__ import annotations

import signal
import threading
from typing import Any

from graphnet.errors import Interrupted


class Stop:
    """Catches SIGINT and SIGTERM while training: the current step finishes, then the run stops
    at a clean point. A second signal acts at once, as usual."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signal_number = 0
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> Stop:
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                self.previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)

    def _handle(self, number: int, frame: Any) -> None:
        self.signal_number = number
        signal.signal(number, self.previous.get(number, signal.SIG_DFL))

    def check(self, epoch: int) -> None:
        if self.signal_number:
            name = signal.Signals(self.signal_number).name
            raise Interrupted(f"interrupted by {name} in epoch {epoch}", self.signal_number)
