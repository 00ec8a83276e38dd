"""Runs commands on this machine: builds, tests and pushes happen here."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..secrets import Masker
from .base import CommandResult, LineSink, collect


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

    def put(self, path: str, data: bytes, mode: int = 0o644) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # O_CREAT's mode does not apply to an existing file
            f.write(data)

    def read(self, path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None

    def open_tcp(self, host: str, port: int) -> socket.socket:
        return socket.create_connection((host, port), timeout=10)

    def close(self) -> None:
        pass
