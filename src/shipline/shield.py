"""Deferring Ctrl-C and SIGTERM while an undo runs: a second Ctrl-C, or CI's SIGINT-then-SIGTERM cancel, must
not abort the switch back halfway. The signal is delivered (as KeyboardInterrupt) once the undo is done.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def shielded() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals; nothing to defer elsewhere
        return
    received: list[int] = []

    def defer(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous: dict[int, Any] = {s: signal.signal(s, defer) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received:
        raise KeyboardInterrupt(signal.Signals(received[0]).name)
