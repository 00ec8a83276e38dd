"""What every rollout strategy works with: one host's Compose project, its containers, health gates, the proxy."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .. import docker_commands as dc
from .. import health
from ..config import Proxy
from ..errors import DeployFailed
from ..executors.base import Executor
from ..layout import COMPOSE_CALL, LEGACY_CALL, RELEASE_LABEL, ComposeCall, HostLayout
from ..plan import ServiceRollout
from ..proxies import ProxyDriver, driver
from ..reporter import Reporter
from ..traefik_labels import LabelRouting


@dataclass
class Applied:
    """How far one service's rollout got: what undoing it needs."""

    step: ServiceRollout
    old: list[str]  # containers that served before this deploy
    new: list[str] = field(default_factory=list)
    old_endpoints: list[str] = field(default_factory=list)
    switched: bool = False
    switched_at: float | None = None  # the host's clock when the proxy confirmed the switch to the new containers

    @property
    def side_by_side(self) -> bool:
        return self.step.side_by_side and bool(self.old)


@dataclass(frozen=True)
class Container:
    id: str
    running: bool
    release: int | None  # the release label, on containers started beside others


def choose_endpoint(networks: dict[str, dict[str, str]], proxy_networks: set[str], port: int) -> str | None:
    """host:port of a container on a network the proxy shares with it (first such network, by name)."""
    for name in sorted(networks):
        if name in proxy_networks and networks[name].get("IPAddress"):
            return f"{networks[name]['IPAddress']}:{port}"
    return None


class RolloutHost:
    """One host's Compose project as the strategies see it. Holds no deploy state of its own."""

    def __init__(self, ex: Executor, app: str, layout: HostLayout, proxy: Proxy | LabelRouting | None,
                 report: Reporter, *,
                 sleep: Callable[[float], None] = time.sleep, proxy_driver: ProxyDriver | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ex, self.app, self.layout, self.proxy, self.report = ex, app, layout, proxy, report
        self.sleep, self.clock = sleep, clock
        self.wave_failed = threading.Event()  # set when a service rolled out beside this one failed
        self._driver = proxy_driver
        self._home: str | None = None
        self._proxy_networks: set[str] | None = None
        self._calls: dict[int, ComposeCall] = {}

    def run(self, argv: Sequence[str], what: str, stdin: bytes | None = None) -> str:
        return self.ex.run(argv, stdin=stdin, on_line=self.report.sink(self.ex.name)).check(what).output

    def home(self) -> str:
        if self._home is None:
            self._home = self.ex.query(["pwd"], "find the home directory").strip()
        return self._home

    def compose_base(self, release: int) -> list[str]:
        """`docker compose` for one release, called as that release was deployed (its `compose.json`)."""
        if release not in self._calls:
            d = self.layout.release_dir(release)
            self._calls[release] = ComposeCall.from_json(self.ex.read(f"{d}/{COMPOSE_CALL}")) or LEGACY_CALL
        call = self._calls[release]
        d = self.layout.release_dir(release)
        project_dir = f"{d}/{call.project_dir}" if call is not LEGACY_CALL else self.layout.data_dir
        return dc.compose(self.app, [f"{d}/{f}" for f in call.files], [f"{d}/{e}" for e in call.env_files],
                          project_dir)

    def containers(self, service: str, *, all_states: bool = False) -> list[str]:
        return self.ex.query(dc.service_containers(self.app, service, all_states=all_states),
                             f"list {service} containers").split()

    def labelled(self) -> tuple[dict[str, list[Container]], list[str]]:
        """Every service's containers, and the one-offs (`compose run`) that are no longer running (left by a
        killed migration): one `docker ps` for what healing needs to look at."""
        services: dict[str, list[Container]] = {}
        stopped_oneoffs = []
        for line in self.ex.query(dc.labelled_containers(self.app, RELEASE_LABEL), "list the project's containers").splitlines():
            cid, state, oneoff, service, label = [*line.split(), "", "", "", ""][:5]
            if oneoff == "True":
                if state in ("exited", "created"):
                    stopped_oneoffs.append(cid)
            elif cid:
                release = int(label) if label.isdigit() else None
                services.setdefault(service, []).append(Container(cid, state == "running", release))
        return services, stopped_oneoffs

    def proxy_driver(self) -> ProxyDriver:
        assert self.proxy is not None
        if self._driver is None:
            proxy = self.proxy

            def container() -> str:
                running = self.containers(proxy.service)
                if not running:
                    raise DeployFailed(f"{self.ex.name}: the proxy service {proxy.service!r} is not running")
                return running[0]

            self._driver = driver(self.ex, proxy, self.app, f"{self.home()}/{self.layout.proxy_dir}", container,
                                  sleep=self.sleep)
        return self._driver

    def routed(self, step: ServiceRollout) -> bool:
        return step.port is not None and self.proxy is not None

    def endpoints(self, containers: Sequence[str], port: int) -> list[str]:
        """host:port of each container on a network it shares with the proxy (one `docker inspect` for all)."""
        assert self.proxy is not None
        proxy: list[str] = []
        if self._proxy_networks is None:
            proxy = self.containers(self.proxy.service)[:1]
            if not proxy:
                raise DeployFailed(f"{self.ex.name}: the proxy service {self.proxy.service!r} is not running")
        networks = self.networks([*proxy, *containers])
        if proxy:
            self._proxy_networks = set(networks[0])
        assert self._proxy_networks is not None
        found = []
        for cid, nets in zip(containers, networks[len(proxy):], strict=True):
            endpoint = choose_endpoint(nets, self._proxy_networks, port)
            if endpoint is None:
                raise DeployFailed(f"{self.ex.name}: container {cid[:12]} shares no network with the proxy; "
                                   f"put it on one of {', '.join(sorted(self._proxy_networks))}")
            found.append(endpoint)
        return found

    def networks(self, containers: Sequence[str]) -> list[dict[str, dict[str, str]]]:
        """Each container's networks, in the order given."""
        if not containers:
            return []
        lines = self.ex.query(dc.inspect_networks(*containers), "inspect networks").splitlines()
        try:
            data = [json.loads(line) for line in lines if line.strip()]
        except ValueError:
            raise DeployFailed(f"{self.ex.name}: docker inspect of {containers[0][:12]} did not print JSON") from None
        if len(data) != len(containers):
            raise DeployFailed(f"{self.ex.name}: docker inspect printed {len(data)} answers for {len(containers)} containers")
        return [d if isinstance(d, dict) else {} for d in data]

    def wait_healthy(self, containers: Sequence[str], service: str, timeout: float) -> float:
        """Docker's own verdict (its health check at its interval): what must agree before old containers go."""
        return health.wait_healthy(self.ex, containers, service, timeout, sleep=self._nap)

    def wait_ready(self, containers: Sequence[str], service: str, timeout: float) -> float:
        """Ready to be switched to: Docker says healthy, or the service's own check passes when run in the
        container now (`health.wait_ready`), so a service ready in 1 s is not kept waiting for Docker's tick."""
        return health.wait_ready(self.ex, containers, service, timeout, sleep=self._nap)

    def _nap(self, seconds: float) -> None:
        """A wait that ends when another service of the wave failed, or (through `sleep`) the run is cancelled."""
        if self.wave_failed.wait(seconds):
            raise KeyboardInterrupt("cancelled: another service of this wave failed")
        self.sleep(0)

    def switch(self, service: str, endpoints: list[str]) -> float:
        """Point the proxy at `endpoints` and wait for its confirmation; returns how long that took."""
        start = time.monotonic()
        self.proxy_driver().switch(service, endpoints)
        return time.monotonic() - start

    def stop(self, containers: Sequence[str], timeout: int, what: str) -> None:
        """Graceful stop (the image's stop signal, then SIGKILL after `timeout` s), then removal."""
        if containers:
            self.ex.query(dc.stop(containers, timeout), f"stop {what}")
            self.ex.query(dc.remove(containers), f"remove {what}")
