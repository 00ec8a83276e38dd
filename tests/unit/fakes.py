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


class FakeDockerHost(FakeExecutor):
    """Just enough of Docker Compose on a host to test rollout logic: containers per service and release.

    `health(service, release)` says how a new container behaves: "healthy", "unhealthy" or "crash".
    """

    def __init__(self, health: Callable[[str, str], str] = lambda s, r: "healthy") -> None:
        super().__init__([self._docker])
        self.health = health
        self.containers: dict[str, tuple[str, str]] = {}  # id -> (service, release)
        self.serial = 0

    def _new(self, svc: str, rel: str) -> None:
        self.serial += 1
        self.containers[f"{svc}-r{rel}-{self.serial}"] = (svc, rel)

    @staticmethod
    def ip_suffix(cid: str) -> int:
        """Each container keeps the address it was created with, as on a Docker network."""
        return int(cid.rsplit("-", 1)[1]) + 1

    def ids(self, svc: str) -> list[str]:
        return [c for c, (s, _) in self.containers.items() if s == svc]

    def _docker(self, argv: list[str]) -> tuple[int, str] | None:
        if argv == ["pwd"]:
            return 0, "/home/deploy\n"
        if argv[:2] == ["docker", "compose"]:
            rel = next(a for a in argv if a.endswith("/.env")).split("/")[-2]
            svc = argv[-1]
            if "up" in argv:
                current = self.ids(svc)
                if "--scale" in argv:
                    self._new(svc, rel)
                elif not current or any(self.containers[c][1] != rel for c in current):
                    for c in current:
                        del self.containers[c]
                    self._new(svc, rel)
                return 0, ""
            return 0, ""
        if argv[:2] == ["docker", "ps"]:
            svc = next(a for a in argv if a.startswith("label=com.docker.compose.service=")).split("=", 2)[2]
            return 0, "".join(f"{c}\n" for c in self.ids(svc))
        if argv[:2] == ["docker", "inspect"]:
            cid = argv[-1]
            if cid not in self.containers:
                return 1, "No such container"
            if "NetworkSettings" in argv[3]:
                return 0, json.dumps({"app_web": {"IPAddress": f"10.0.0.{self.ip_suffix(cid)}"}})
            behaviour = self.health(*self.containers[cid])
            if behaviour == "crash":
                return 0, json.dumps({"State": {"Status": "restarting", "ExitCode": 1}, "RestartCount": 1})
            return 0, json.dumps({"State": json.loads(state("running", behaviour)), "RestartCount": 0})
        if argv[:2] in (["docker", "stop"], ["docker", "rm"]):
            for c in argv[2:]:
                self.containers.pop(c, None)
            return 0, ""
        return None


class FakeProxy:
    """Records every switch, as the proxy would apply it."""

    def __init__(self) -> None:
        self.routes: dict[str, list[str]] = {}
        self.switches: list[tuple[str, list[str]]] = []

    def switch(self, service: str, endpoints: list[str]) -> None:
        self.routes[service] = list(endpoints)
        self.switches.append((service, list(endpoints)))
