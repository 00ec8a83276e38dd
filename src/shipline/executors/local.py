"""Runs commands on this machine: builds, tests and pushes happen here (and tests use it as a host)."""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from ..cancel import Cancel
from ..secrets import Masker
from .base import CommandResult, LineSink, collect, ended, query_failed

POLL = 0.25  # how often a wait looks at the cancel flag


def _lines(stream: Iterator[bytes]) -> queue.Queue[bytes | None]:
    """A process's output lines, read by a thread, so the caller can wait for them and still be cancelled."""
    lines: queue.Queue[bytes | None] = queue.Queue()

    def read() -> None:
        for raw in stream:
            lines.put(raw)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _until_end(lines: queue.Queue[bytes | None], cancel: Cancel, on_cancel: Callable[[], None]) -> Iterator[bytes]:
    while True:
        try:
            raw = lines.get(timeout=POLL)
        except queue.Empty:
            if cancel.requested:
                on_cancel()
                cancel.check()
            continue
        if raw is None:
            return
        yield raw


class LocalHeld:
    """A local process with a stdin pipe, read line by line with timeouts."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None, cancel: Cancel) -> None:
        self._proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, env=env, start_new_session=True)
        assert self._proc.stdout
        self._lines = _lines(self._proc.stdout)
        self._cancel = cancel

    def readline(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while True:
            self._cancel.check()
            try:
                raw = self._lines.get(timeout=max(0.0, min(POLL, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    return None
                continue
            return None if raw is None else raw.decode("utf-8", "replace").rstrip("\n")

    def alive(self) -> bool:
        return self._proc.poll() is None

    def close(self) -> int | None:
        assert self._proc.stdin
        with contextlib.suppress(OSError):
            self._proc.stdin.close()
        try:
            return self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None


class LocalExecutor:
    name = "local"

    def __init__(self, masker: Masker | None = None, env: Mapping[str, str] | None = None,
                 cancel: Cancel | None = None) -> None:
        self._mask = masker or Masker()
        self._env = dict(env) if env is not None else None
        self._cancel = cancel or Cancel()

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        on_line: LineSink | None = None,
        cwd: str | None = None,
    ) -> CommandResult:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=self._env,
            )
        except FileNotFoundError:
            return CommandResult(tuple(argv), ended(on_line, 127), f"{argv[0]}: command not found\n")
        if stdin is not None:
            assert proc.stdin
            proc.stdin.write(stdin)
            proc.stdin.close()
        assert proc.stdout
        # Cancelled: the command is stopped (as Ctrl-C in a terminal would) and KeyboardInterrupt raised here.
        output = collect(_until_end(_lines(proc.stdout), self._cancel, proc.terminate), self._mask, on_line)
        return CommandResult(tuple(argv), ended(on_line, proc.wait()), output)

    def query(self, argv: Sequence[str], what: str | None = None) -> str:
        try:
            proc = subprocess.run(list(argv), capture_output=True, env=self._env, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise query_failed(argv, what, 127, f"{argv[0]}: command not found") from None
        if proc.returncode != 0:
            raise query_failed(argv, what, proc.returncode, self._mask(proc.stderr.decode("utf-8", "replace")))
        return proc.stdout.decode("utf-8", "replace")

    def put(self, path: str, data: bytes, mode: int = 0o644, tmp_dir: str | None = None) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = (Path(tmp_dir) if tmp_dir else target.parent) / f".{target.name}.shipline-tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # O_CREAT's mode does not apply to a file left by an earlier attempt
            f.write(data)
        os.replace(tmp, target)

    def append(self, path: str, data: bytes) -> None:
        with open(path, "ab") as f:
            f.write(data)

    def read(self, path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None

    def listdir(self, path: str) -> list[str] | None:
        try:
            return os.listdir(path)
        except FileNotFoundError:
            return None

    def hold(self, argv: Sequence[str]) -> LocalHeld:
        return LocalHeld(argv, self._env, self._cancel)

    def open_tcp(self, host: str, port: int) -> socket.socket:
        return socket.create_connection((host, port), timeout=10)

    def reconnect(self) -> None:
        pass

    def close(self) -> None:
        pass
