"""A scripted executor for deploy logic tests: records every command, answers from rules."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from shipline.errors import ConnectionLost
from shipline.executors.base import CommandResult, LineSink, query_failed

Rule = Callable[[list[str]], tuple[int, str] | None]


class FakeHeld:
    """The lock holder as a host runs it: says LOCKED, lives until closed (or the connection drops)."""

    def __init__(self, host: FakeExecutor) -> None:
        self.host, self.open, self._said = host, True, False

    def readline(self, timeout: float) -> str | None:
        if self._said:
            return None
        self._said = True
        return "LOCKED"

    def alive(self) -> bool:
        return self.open and self.host.connected

    def close(self) -> int | None:
        self.open = False
        self.host.released += 1
        return 0


class FakeExecutor:
    name = "fake"

    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        self.rules = list(rules)
        self.commands: list[list[str]] = []
        self.files: dict[str, tuple[bytes, int]] = {}
        self.tmp_dirs: dict[str, str | None] = {}  # where put() wrote each file's temporary copy (None: beside it)
        self.connected = True
        self.reconnects = 0
        self.released = 0  # lock holders closed
        self.drop_when: Callable[[list[str]], bool] = lambda argv: False
        self.reconnect_ok = True

    def _answer(self, argv: list[str]) -> tuple[int, str]:
        if not self.connected or self.drop_when(argv):
            self.connected = False
            raise ConnectionLost(f"the SSH connection to {self.name} dropped while it was running {argv[0]}")
        self.commands.append(argv)
        for rule in self.rules:
            answer = rule(argv)
            if answer is not None:
                return answer
        return 0, ""

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, on_line: LineSink | None = None,
            cwd: str | None = None) -> CommandResult:
        argv = list(argv)
        code, out = self._answer(argv)
        if on_line:
            for line in out.splitlines():
                on_line(line)
        return CommandResult(tuple(argv), code, out)

    def query(self, argv: Sequence[str], what: str | None = None) -> str:
        code, out = self._answer(list(argv))
        if code != 0:
            raise query_failed(argv, what, code, out)
        return out

    def put(self, path: str, data: bytes, mode: int = 0o644, tmp_dir: str | None = None) -> None:
        if not self.connected:
            raise ConnectionLost(f"the SSH connection to {self.name} has dropped")
        self.files[path] = (data, mode)
        self.tmp_dirs[path] = tmp_dir

    def append(self, path: str, data: bytes) -> None:
        if not self.connected:
            raise ConnectionLost(f"the SSH connection to {self.name} has dropped")
        old = self.files.get(path, (b"", 0o644))
        self.files[path] = (old[0] + data, old[1])

    def read(self, path: str) -> bytes | None:
        entry = self.files.get(path)
        return entry[0] if entry else None

    def listdir(self, path: str) -> list[str] | None:
        """Answered by the rules as `ls -1 PATH` would be (exit status 0: one name per line)."""
        code, out = self._answer(["ls", "-1", path])
        return out.split() if code == 0 else None

    def hold(self, argv: Sequence[str]) -> FakeHeld:
        self.commands.append(list(argv))
        return FakeHeld(self)

    def open_tcp(self, host: str, port: int) -> object:
        raise NotImplementedError

    def reconnect(self) -> None:
        self.reconnects += 1
        if not self.reconnect_ok:
            raise ConnectionLost(f"Cannot connect to {self.name}: refused.")
        self.connected = True
        self.drop_when = lambda argv: False

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

    `health(service, release)` says how a new container behaves: "healthy", "unhealthy" or "crash"; a one-shot
    job's container "exit:N" (it exited with status N).
    """

    def __init__(self, health: Callable[[str, str], str] = lambda s, r: "healthy") -> None:
        super().__init__([self._docker])
        self.health = health
        self.containers: dict[str, tuple[str, str]] = {}  # id -> (service, release)
        self.serial = 0

    def _new(self, svc: str, rel: str) -> str:
        self.serial += 1
        cid = f"{svc}-r{rel}-{self.serial}"
        self.containers[cid] = (svc, rel)
        return cid

    @staticmethod
    def ip_suffix(cid: str) -> int:
        """Each container keeps the address it was created with, as on a Docker network."""
        return int(cid.rsplit("-", 1)[1]) + 1

    def endpoint(self, cid: str, port: int) -> str:
        return f"10.0.0.{self.ip_suffix(cid)}:{port}"

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
                elif not current or "--force-recreate" in argv or any(self.containers[c][1] != rel for c in current):
                    for c in current:
                        del self.containers[c]
                    self._new(svc, rel)
                return 0, ""
            return 0, ""
        if argv[:2] == ["docker", "ps"]:
            if not any(a.startswith("label=com.docker.compose.service=") for a in argv):  # the whole project
                return 0, "".join(f"{c} running False {s} {r}\n" for c, (s, r) in self.containers.items())
            svc = next(a for a in argv if a.startswith("label=com.docker.compose.service=")).split("=", 2)[2]
            if "--format" in argv:
                return 0, "".join(f"{c} running {self.containers[c][1]}\n" for c in self.ids(svc))
            return 0, "".join(f"{c}\n" for c in self.ids(svc))
        if argv[:3] == ["docker", "image", "inspect"]:
            return 0, "".join(json.dumps([f"{ref.rsplit(':', 1)[0]}@sha256:{'d' * 64}"]) + "\n" for ref in argv[5:])
        if argv[:2] == ["docker", "inspect"]:
            cid = argv[-1]
            if any(c not in self.containers for c in argv[4:]):
                return 1, "No such container"
            if "NetworkSettings" in argv[3]:
                return 0, "".join(json.dumps({"app_web": {"IPAddress": f"10.0.0.{self.ip_suffix(c)}"}}) + "\n"
                                  for c in argv[4:])
            behaviour = self.health(*self.containers[cid])
            if behaviour.startswith("exit:"):
                code = int(behaviour.split(":")[1])
                return 0, json.dumps({"State": {"Status": "exited", "ExitCode": code}, "RestartCount": 0})
            if behaviour == "crash":
                return 0, json.dumps({"State": {"Status": "restarting", "ExitCode": 1}, "RestartCount": 1})
            return 0, json.dumps({"State": json.loads(state("running", behaviour)), "RestartCount": 0})
        if argv[:2] == ["docker", "logs"]:
            return 0, f"output of {argv[-1]}\nError: relation already exists\n"
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

    def routed(self, service: str) -> list[str] | None:
        return self.routes.get(service)
