"""Runs commands on this machine: builds, tests and pushes happen here (and tests use it as a host)."""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..secrets import Masker
from .base import CommandResult, LineSink, collect, query_failed


class LocalHeld:
    """A local process with a stdin pipe; a reader thread turns its stdout into lines with timeouts."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None) -> None:
        self._proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout
        for raw in self._proc.stdout:
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._lines.put(None)

    def readline(self, timeout: float) -> str | None:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return None

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

    def __init__(self, masker: Masker | None = None, env: Mapping[str, str] | None = None) -> None:
        self._mask = masker or Masker()
        self._env = dict(env) if env is not None else None

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
            return CommandResult(tuple(argv), 127, f"{argv[0]}: command not found\n")
        if stdin is not None:
            assert proc.stdin
            proc.stdin.write(stdin)
            proc.stdin.close()
        assert proc.stdout
        output = collect(proc.stdout, self._mask, on_line)
        return CommandResult(tuple(argv), proc.wait(), output)

    def query(self, argv: Sequence[str], what: str | None = None) -> str:
        try:
            proc = subprocess.run(list(argv), capture_output=True, env=self._env, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise query_failed(argv, what, 127, f"{argv[0]}: command not found") from None
        if proc.returncode != 0:
            raise query_failed(argv, what, proc.returncode, self._mask(proc.stderr.decode("utf-8", "replace")))
        return proc.stdout.decode("utf-8", "replace")

    def put(self, path: str, data: bytes, mode: int = 0o644) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.shipline-tmp")
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

    def hold(self, argv: Sequence[str]) -> LocalHeld:
        return LocalHeld(argv, self._env)

    def open_tcp(self, host: str, port: int) -> socket.socket:
        return socket.create_connection((host, port), timeout=10)

    def reconnect(self) -> None:
        pass

    def close(self) -> None:
        pass
