"""The one small interface every executor implements: run a command, query one, hold one open, put a file."""

from __future__ import annotations

import shlex
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import StepFailed

LineSink = Callable[[str], None]

# What a CommandResult keeps of a command's output: its last lines, up to this many characters. Enough for
# every listing shipline parses and for an error's tail; a build's megabytes of log go to the sinks only.
KEEP_CHARS = 1 << 20


def collect(raw_lines: Iterable[bytes], mask: Callable[[str], str], on_line: LineSink | None,
            keep: int = KEEP_CHARS) -> str:
    """Decode, mask and forward every line of a command's output; return its last `keep` characters (masked)."""
    kept: deque[str] = deque()
    size = dropped = 0
    for raw in raw_lines:
        line = mask(raw.decode("utf-8", "replace").rstrip("\r\n"))
        if on_line:
            on_line(line)
        kept.append(line[-keep:])
        size += len(kept[-1]) + 1
        while size > keep and len(kept) > 1:
            size -= len(kept.popleft()) + 1
            dropped += 1
    head = f"[{dropped} earlier lines not kept]\n" if dropped else ""
    return head + "".join(f"{line}\n" for line in kept)


def ended(on_line: LineSink | None, returncode: int) -> int:
    """Tell a sink that can take it (the reporter's) how its command ended; returns `returncode`."""
    end = getattr(on_line, "end", None)
    if end is not None:
        end(returncode)
    return returncode


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


def query_failed(argv: Sequence[str], what: str | None, code: int, stderr: str) -> StepFailed:
    tail = "\n".join(stderr.rstrip("\n").splitlines()[-20:])
    return StepFailed(f"{what or shlex.join(argv)} failed with exit status {code}:\n{tail}", code, stderr)


class Held(Protocol):
    """A command left running with its stdin open (the deploy lock's holder). It ends when we close it."""

    def readline(self, timeout: float) -> str | None:
        """The next line it prints, or None when it ended or printed nothing within `timeout` seconds."""
        ...

    def alive(self) -> bool: ...

    def close(self) -> int | None:
        """Close its stdin (it then exits) and return its exit status, if it came within a few seconds."""
        ...


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

    def query(self, argv: Sequence[str], what: str | None = None) -> str:
        """Standard output of a command whose output is parsed (JSON, ids): unmasked, so a secret's characters
        cannot corrupt it, and without stderr, so a warning cannot either. Raises StepFailed (with the masked
        stderr) on a non-zero exit. Only for output that carries no secret, such as ids, states and addresses.
        """
        ...

    def put(self, path: str, data: bytes, mode: int = 0o644, tmp_dir: str | None = None) -> None:
        """Write a file atomically (a temporary file renamed over it) with `mode` from its creation on.

        `tmp_dir` (same filesystem) holds the temporary file instead of the target's directory: a watcher of
        that directory (Traefik's file provider) then sees one event, the finished file, not three."""
        ...

    def append(self, path: str, data: bytes) -> None: ...

    def read(self, path: str) -> bytes | None:
        """A file's content, or None when it does not exist."""
        ...

    def listdir(self, path: str) -> list[str] | None:
        """The names in a directory, or None when it does not exist (over SSH, by SFTP: no command runs)."""
        ...

    def hold(self, argv: Sequence[str]) -> Held:
        """Start a command that runs until `close()` or until this connection ends, whichever comes first."""
        ...

    def open_tcp(self, host: str, port: int) -> Any:
        """A socket-like connection to host:port as seen from where commands run (an SSH tunnel for hosts).

        Lets shipline talk to a proxy's API that is published only on the server's loopback.
        """
        ...

    def reconnect(self) -> None:
        """A new connection after the old one dropped (what was held on the old one is gone)."""
        ...

    def close(self) -> None: ...
