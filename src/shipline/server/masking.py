"""Masks secrets in a stream of output lines, also where a secret spans lines.

`shipline deploy` already masks each line it prints, but a line-by-line masker cannot see a multi-line secret (a
PEM key echoed by a test step) or one that a tool wrapped over two lines. This one matches secrets against the
concatenated content of consecutive lines (each without the reporter's `step |` prefix), and
holds back a line only while its end could be the start of a secret. Held lines are released by `flush` when the
output goes quiet; a secret completed after that is still masked in the lines that complete it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..secrets import MASK

PREFIX_RE = re.compile(r"^[\w .:/@-]{1,60} \| ")  # the reporter's "build backend | " before a tool's output
MIN_LEN = 4  # as shipline.secrets.Masker: shorter values would mask ordinary words


def mask_all(value: Any, mask: Callable[[str], str]) -> Any:
    """Every string inside `value` (dicts, lists) masked: what pages, the API and notifications send."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: mask_all(v, mask) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_all(v, mask) for v in value]
    return value


def needle(secret: str) -> str:
    """A secret as it appears in content: its lines joined (a wrap can fall on a blank, so blanks stay)."""
    return "".join(secret.splitlines())


@dataclass
class _Line:
    text: str
    start: int  # the content's span within text
    end: int
    masked: list[bool] = field(default_factory=list)

    @classmethod
    def of(cls, text: str) -> _Line:
        m = PREFIX_RE.match(text)
        return cls(text, m.end() if m else 0, len(text), [False] * len(text))

    @property
    def content(self) -> str:
        return self.text[self.start:self.end]

    def render(self) -> str:
        out, i = [], 0
        while i < len(self.text):
            if self.masked[i]:
                while i < len(self.text) and self.masked[i]:
                    i += 1
                out.append(MASK)
            else:
                out.append(self.text[i])
                i += 1
        return "".join(out)


class StreamMasker:
    def __init__(self, secrets: Iterable[str]) -> None:
        self._raw = sorted({s for s in secrets if len(s.strip()) >= MIN_LEN}, key=len, reverse=True)
        self._needles = sorted({needle(s) for s in self._raw if len(needle(s)) >= MIN_LEN}, key=len, reverse=True)
        self._longest = max((len(n) for n in self._needles), default=0)
        self._pending: list[_Line] = []
        self._context = ""  # content of lines already released, as much as a secret could still continue

    @property
    def holding(self) -> bool:
        return bool(self._pending)

    def feed(self, text: str) -> list[str]:
        """Take one line; return the lines (masked) that can no longer be part of an unseen secret."""
        line = _Line.of(text)
        for raw in self._raw:  # whole secrets inside the line, wherever they are
            self._mark_all(line, raw)
        self._pending.append(line)
        joined, where = self._joined()
        for n in self._needles:
            start = joined.find(n)
            while start != -1:
                for pos in range(start, start + len(n)):
                    idx, col = where[pos]
                    if idx >= 0:
                        self._pending[idx].masked[col] = True
                start = joined.find(n, start + 1)
        hold = self._partial_start(joined)
        if hold is None:
            return self._release(len(self._pending))
        first_held = where[hold][0]
        return self._release(first_held)

    def flush(self) -> list[str]:
        """Release every held line (output went quiet, or ended); a held secret prefix of 4+ characters is masked."""
        joined, where = self._joined()
        hold = self._partial_start(joined)
        if hold is not None and len(joined) - hold >= MIN_LEN:
            for pos in range(hold, len(joined)):
                idx, col = where[pos]
                self._pending[idx].masked[col] = True
        return self._release(len(self._pending))

    def _mark_all(self, line: _Line, value: str) -> None:
        start = line.text.find(value)
        while start != -1:
            for pos in range(start, start + len(value)):
                line.masked[pos] = True
            start = line.text.find(value, start + 1)

    def _joined(self) -> tuple[str, list[tuple[int, int]]]:
        where: list[tuple[int, int]] = [(-1, -1)] * len(self._context)
        parts = [self._context]
        for idx, line in enumerate(self._pending):
            parts.append(line.content)
            where += [(idx, col) for col in range(line.start, line.end)]
        return "".join(parts), where

    def _partial_start(self, joined: str) -> int | None:
        """The first position in the pending content from which the rest could begin a secret not yet complete."""
        first = max(len(self._context), len(joined) - self._longest + 1)
        for q in range(first, len(joined)):
            tail = joined[q:]
            if any(len(n) > len(tail) and n.startswith(tail) for n in self._needles):
                return q
        return None

    def _release(self, count: int) -> list[str]:
        out, self._pending = self._pending[:count], self._pending[count:]
        if out and self._longest:
            self._context = (self._context + "".join(line.content for line in out))[-(self._longest - 1):] \
                if self._longest > 1 else ""
        return [line.render() for line in out]
