"""Progress output: every stage announces itself and reports its duration; step output is prefixed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.text import Text

from .secrets import Masker


class Reporter:
    """Thread-safe (parallel builds print through it); masks every line it prints."""

    def __init__(self, console: Console, masker: Masker | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.mask = masker or Masker()
        self.durations: dict[str, float] = {}
        self._clock = clock
        self._lock = threading.Lock()

    def _print(self, *parts: str | tuple[str, str]) -> None:
        """Styles come from (text, style) pairs, never from markup, so `[...]` in any text prints as written."""
        with self._lock:
            self.console.print(Text.assemble(*parts), highlight=False, soft_wrap=True)

    @contextmanager
    def stage(self, name: str, what: str = "") -> Iterator[None]:
        self._print(("==>", "bold cyan"), " ", (name, "bold"), f" {self.mask(what)}" if what else "")
        start = self._clock()
        try:
            yield
        except BaseException:
            self.durations[name] = self._clock() - start
            self._print(("FAIL", "bold red"), " ", (name, "bold"), f" after {self.durations[name]:.1f}s")
            raise
        self.durations[name] = self._clock() - start
        self._print((" ok ", "bold green"), " ", (name, "bold"), f" in {self.durations[name]:.1f}s")

    def line(self, prefix: str, text: str) -> None:
        self._print((f"{prefix} |", "dim"), " ", self.mask(text))

    def sink(self, prefix: str) -> Callable[[str], None]:
        return lambda text: self.line(prefix, text)

    def info(self, text: str) -> None:
        self._print(f"    {self.mask(text)}")

    def warn(self, text: str) -> None:
        self._print(("warning:", "yellow"), " ", self.mask(text))

    def error(self, text: str) -> None:
        self._print(("error:", "bold red"), " ", self.mask(text))
