"""A scripted executor for deploy logic tests: records every command, answers from rules."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from shipline.executors.base import CommandResult, LineSink

Rule = Callable[[list[str]], tuple[int, str] | None]


class FakeExecutor:
    name = "fake"

    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        self.rules = list(rules)
        self.commands: list[list[str]] = []
        self.files: dict[str, tuple[bytes, int]] = {}

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, on_line: LineSink | None = None,
            cwd: str | None = None) -> CommandResult:
        argv = list(argv)
        self.commands.append(argv)
        for rule in self.rules:
            answer = rule(argv)
            if answer is not None:
                code, out = answer
                if on_line:
                    for line in out.splitlines():
                        on_line(line)
                return CommandResult(tuple(argv), code, out)
        return CommandResult(tuple(argv), 0, "")

    def put(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self.files[path] = (data, mode)

    def read(self, path: str) -> bytes | None:
        entry = self.files.get(path)
        return entry[0] if entry else None

    def close(self) -> None:
        pass

    def ran(self, *words: str) -> list[list[str]]:
        """Commands containing all these words, in order of running."""
        return [c for c in self.commands if all(w in c for w in words)]


def state(status: str = "running", health: str | None = "healthy", exit_code: int = 0) -> str:
    s: dict[str, object] = {"Status": status, "Running": status == "running", "ExitCode": exit_code}
    if health:
        s["Health"] = {"Status": health, "Log": [{"Output": "probe said no"}] if health == "unhealthy" else []}
    return json.dumps(s)
