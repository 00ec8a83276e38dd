"""The one small interface every executor implements: run a command, put a file."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import StepFailed

LineSink = Callable[[str], None]


def collect(raw_lines: Iterable[bytes], mask: Callable[[str], str], on_line: LineSink | None) -> str:
    """Decode, mask and forward a command's output line by line; return it whole (masked)."""
    lines = []
    for raw in raw_lines:
        line = mask(raw.decode("utf-8", "replace").rstrip("\r\n"))
        lines.append(line)
        if on_line:
            on_line(line)
    return "".join(f"{line}\n" for line in lines)


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    output: str  # stdout and stderr interleaved, secrets already masked

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.output.rstrip("\n").splitlines()[-lines:])

    def check(self, what: str | None = None) -> CommandResult:
        if not self.ok:
            raise StepFailed(
                f"{what or shlex.join(self.argv)} failed with exit status {self.returncode}:\n{self.tail()}",
                self.returncode,
                self.output,
            )
        return self


class Executor(Protocol):
    """Where commands run. Output is masked by the executor, so no caller can leak a secret by printing it."""

    name: str

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        on_line: LineSink | None = None,
        cwd: str | None = None,
    ) -> CommandResult: ...

    def put(self, path: str, data: bytes, mode: int = 0o644) -> None: ...

    def read(self, path: str) -> bytes | None:
        """A file's content, or None when it does not exist."""
        ...

    def open_tcp(self, host: str, port: int) -> Any:
        """A socket-like connection to host:port as seen from where commands run (an SSH tunnel for hosts).

        Lets shipline talk to a proxy's API that is published only on the server's loopback.
        """
        ...

    def close(self) -> None: ...
