"""Wakes whoever waits for news (new log lines, a run changing state): SSE streams and `git push` hooks."""

from __future__ import annotations

import asyncio


class Hub:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, timeout: float) -> bool:
        """True when something happened within `timeout` seconds."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True
