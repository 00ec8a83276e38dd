"""Cancelling a run at safe points.

Ctrl-C and SIGTERM (a CI job cancelled) only set a flag. shipline checks it between steps, between the
chunks it reads from a command, and while it waits, and raises KeyboardInterrupt there: never inside a
library call, where an exception can leave a lock taken (paramiko's) and the next command hanging. While an
undo runs the flag is not acted on (a second Ctrl-C, or CI's SIGINT-then-SIGTERM, must not abort a switch
back halfway); the interruption is raised once the undo is done.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Cancel:
    """One run's cancellation flag. A new one is never requested, so code without a caller's can use its own."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._reason = ""
        self._shields = 0
        self._children: list[Cancel] = []

    def request(self, reason: str) -> None:
        if not self._event.is_set():
            self._reason = reason
            self._event.set()
        for child in self._children:
            child.request(reason)

    def child(self) -> Cancel:
        """A flag for part of the run (the local build and tests) that can be cancelled alone, and is cancelled
        whenever this one is."""
        child = Cancel()
        self._children.append(child)
        if self.requested:
            child.request(self._reason)
        return child

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise KeyboardInterrupt if cancelling was asked for (and no undo is running)."""
        if self._event.is_set() and not self._shields:
            raise KeyboardInterrupt(self._reason)

    def sleep(self, seconds: float) -> None:
        """Wait, ending early (with KeyboardInterrupt) if the run is cancelled."""
        if self._shields:
            time.sleep(seconds)
        elif self._event.wait(seconds):
            raise KeyboardInterrupt(self._reason)

    @contextmanager
    def shielded(self) -> Iterator[None]:
        self._shields += 1
        try:
            yield
        finally:
            self._shields -= 1
        self.check()

    @contextmanager
    def on_signals(self) -> Iterator[None]:
        """Ctrl-C and SIGTERM request cancelling while inside (main thread only); handlers restored after."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            self.request(f"interrupted by {signal.Signals(signum).name}")

        previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {s: signal.signal(s, handler) for s in SIGNALS}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
