"""Deploy one release to one host: lock, upload, pull, migrate, roll out in order, prune; undo on failure.

Rollout strategies per service:
- zero-downtime: the new container starts next to the old one; once healthy the proxy is switched to it and
  the switch confirmed through the proxy's API. Old containers keep running until every service is switched,
  so undoing a failed deploy is a switch back; then they are drained and stopped gracefully.
- start-first: the same without a proxy (workers).
- recreate: Compose replaces the container (a database is left alone when its definition is unchanged).
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from . import docker_commands as dc
from . import health, lock
from .config import Proxy
from .errors import DeployFailed, ShiplineError
from .executors.base import Executor
from .layout import COMPOSE_FILE, ENV_FILE, OVERRIDE_FILE, RELEASE_FILE, HostLayout
from .plan import HostDeploy, ServiceRollout, override_file
from .proxies import ProxyDriver, driver
from .reporter import Reporter
from .secrets import Secret


@dataclass(frozen=True)
class ReleaseFiles:
    """What a release puts on a host. The env file holds secrets: uploaded 0600, never printed."""

    number: int
    compose: bytes
    images: dict[str, str]
    env: bytes
    meta: dict[str, object]


@dataclass(frozen=True)
class DeploySettings:
    lock_ttl: float
    lock_wait: float
    keep: list[int]  # release numbers whose files and images stay on the host
    keep_images: set[str]
    registry_login: tuple[tuple[str, ...], Secret] | None = None


@dataclass
class Applied:
    """How far one service's rollout got: what undoing it needs."""

    step: ServiceRollout
    old: list[str]  # containers that served before this deploy
    new: list[str] = field(default_factory=list)
    old_endpoints: list[str] = field(default_factory=list)
    switched: bool = False

    @property
    def side_by_side(self) -> bool:
        return self.step.strategy in ("zero-downtime", "start-first") and bool(self.old)


def choose_endpoint(networks: dict[str, dict[str, str]], proxy_networks: set[str], port: int) -> str | None:
    """host:port of a container on a network the proxy shares with it (first such network, by name)."""
    for name in sorted(networks):
        if name in proxy_networks and networks[name].get("IPAddress"):
            return f"{networks[name]['IPAddress']}:{port}"
    return None


class HostDeployer:
    def __init__(self, ex: Executor, target: HostDeploy, app: str, report: Reporter, proxy: Proxy | None = None,
                 *, sleep: Callable[[float], None] = time.sleep, proxy_driver: ProxyDriver | None = None) -> None:
        self.ex, self.target, self.app, self.report, self.proxy = ex, target, app, report, proxy
        self.layout: HostLayout = target.layout
        self._sleep = sleep
        self._home: str | None = None
        self._driver = proxy_driver
        self._proxy_networks: set[str] | None = None

    # -- plumbing ---------------------------------------------------------------------------------------

    def compose_base(self, release: int) -> list[str]:
        return dc.compose(self.app, self.layout.compose_files(release), self.layout.env_file(release))

    def _run(self, argv: Sequence[str], what: str, stdin: bytes | None = None) -> str:
        return self.ex.run(argv, stdin=stdin, on_line=self.report.sink(f"{self.ex.name}")).check(what).output

    def _quiet(self, argv: Sequence[str], what: str) -> str:
        return self.ex.run(argv).check(what).output

    def home(self) -> str:
        if self._home is None:
            self._home = self._quiet(["pwd"], "find the home directory").strip()
        return self._home

    def containers(self, service: str, *, all_states: bool = False) -> list[str]:
        argv = dc.service_containers(self.app, service, all_states=all_states)
        return self._quiet(argv, f"list {service} containers").split()

    def proxy_driver(self) -> ProxyDriver:
        assert self.proxy is not None
        if self._driver is None:
            proxy = self.proxy

            def container() -> str:
                running = self.containers(proxy.service)
                if not running:
                    raise DeployFailed(f"{self.ex.name}: the proxy service {proxy.service!r} is not running")
                return running[0]

            self._driver = driver(self.ex, proxy, self.app, f"{self.home()}/{self.layout.proxy_dir}", container)
        return self._driver

    def endpoints(self, containers: list[str], port: int) -> list[str]:
        assert self.proxy is not None
        if self._proxy_networks is None:
            proxies = self.containers(self.proxy.service)
            if not proxies:
                raise DeployFailed(f"{self.ex.name}: the proxy service {self.proxy.service!r} is not running")
            self._proxy_networks = set(self._networks(proxies[0]))
        found = []
        for cid in containers:
            endpoint = choose_endpoint(self._networks(cid), self._proxy_networks, port)
            if endpoint is None:
                raise DeployFailed(f"{self.ex.name}: container {cid[:12]} shares no network with the proxy; "
                                   f"put it on one of {', '.join(sorted(self._proxy_networks))}")
            found.append(endpoint)
        return found

    def _networks(self, cid: str) -> dict[str, dict[str, str]]:
        out = self._quiet(dc.inspect_networks(cid), "inspect networks")
        data: dict[str, dict[str, str]] = json.loads(out)
        return data

    # -- the deploy -------------------------------------------------------------------------------------

    def upload(self, files: ReleaseFiles) -> None:
        d = self.layout.release_dir(files.number)
        self._run(["mkdir", "-p", d, self.layout.proxy_dir], "create release directory")
        proxy_dir = f"SHIPLINE_PROXY_DIR={self.home()}/{self.layout.proxy_dir}\n".encode()
        self.ex.put(f"{d}/{ENV_FILE}", files.env + proxy_dir, 0o600)
        self.ex.put(f"{d}/{COMPOSE_FILE}", files.compose)
        self.ex.put(f"{d}/{OVERRIDE_FILE}", override_file(files.images).encode())
        self.ex.put(f"{d}/{RELEASE_FILE}", json.dumps(files.meta, indent=2).encode())

    def copy_release(self, source: int, number: int) -> None:
        """A rollback reuses an earlier release's files as they were deployed."""
        src, dst = self.layout.release_dir(source), self.layout.release_dir(number)
        if not self.ex.run(["test", "-f", f"{src}/{COMPOSE_FILE}"]).ok:
            raise DeployFailed(f"{self.ex.name}: release {source}'s files are no longer on the host (pruned); "
                               "deploy its commit again with `shipline deploy --ref SHA` instead.")
        self._run(["cp", "-a", src, dst], "copy release files")

    def deploy(self, files: ReleaseFiles, previous: int | None, settings: DeploySettings,
               *, copy_from: int | None = None) -> None:
        """Deploy and, if any service fails, put every touched service back on `previous`."""
        holder = f"{files.meta.get('actor', 'unknown')} (release {files.number})"
        lock.acquire(self.ex, self.layout, holder=holder, commit=str(files.meta.get("short_sha", "")),
                     ttl=settings.lock_ttl, wait=settings.lock_wait,
                     on_wait=lambda info: self.report.info(f"{self.ex.name}: waiting for the deploy lock, {info.describe()}"))
        try:
            if copy_from is not None:
                self.copy_release(copy_from, files.number)
            else:
                self.upload(files)
            if settings.registry_login:
                argv, password = settings.registry_login
                self._run(argv, "registry login", stdin=password.reveal().encode())
            for ref in files.images.values():
                self._run(dc.pull(ref), f"pull {ref}")
            self.rollout(files.number, previous)
            self.ex.put(self.layout.current_file, f"{files.number}\n".encode())
        finally:
            lock.release(self.ex, self.layout)
        self.prune(settings)

    def rollout(self, number: int, previous: int | None) -> None:
        base = self.compose_base(number)
        done: list[Applied] = []
        try:
            for step in self.target.rollout:
                if step.migrate_before:
                    self.report.info(f"{self.ex.name}: release phase: migrate with the new {step.service} image")
                    self._run([*base, *step.migrate_before], "migration")
                self.apply(step, base, done)
        except (ShiplineError, KeyboardInterrupt) as exc:
            why = exc.message if isinstance(exc, ShiplineError) else "interrupted"
            if done:
                self.report.warn(f"{self.ex.name}: {why}; undoing {', '.join(a.step.service for a in done)}")
                self.undo(done, previous)
            if isinstance(exc, KeyboardInterrupt):
                raise
            back = f" Release {previous} is serving." if previous is not None and done else ""
            raise DeployFailed(f"{self.ex.name}: {why}.{back}") from None
        self.retire(done)

    def apply(self, step: ServiceRollout, base: list[str], done: list[Applied]) -> None:
        svc = step.service
        applied = Applied(step, old=self.containers(svc))
        done.append(applied)  # from here on, an undo knows what this service had
        if applied.side_by_side:
            self.report.info(f"{self.ex.name}: {svc}: starting the new container next to the old one")
            self._run(dc.compose_up(base, svc, replicas_beside=len(applied.old)), f"start new {svc}")
            applied.new = [c for c in self.containers(svc, all_states=True) if c not in applied.old]
        else:
            self._run(dc.compose_up(base, svc), f"start {svc}")
            applied.new = self.containers(svc, all_states=True)
        waited = health.wait_healthy(self.ex, applied.new, svc, step.health_timeout)
        self.report.info(f"{self.ex.name}: {svc} healthy after {waited:.1f}s")
        if step.port is not None and self.proxy is not None:
            if applied.side_by_side:
                applied.old_endpoints = self.endpoints(applied.old, step.port)
            new_endpoints = self.endpoints(applied.new, step.port)
            start = time.monotonic()
            applied.switched = True  # before: a switch cut short may have reached the proxy, so undo switches back
            self.proxy_driver().switch(svc, new_endpoints)
            self.report.info(f"{self.ex.name}: {svc}: proxy switched to {', '.join(new_endpoints)} and confirmed "
                             f"in {time.monotonic() - start:.2f}s")

    def retire(self, done: list[Applied]) -> None:
        """Drain, then stop gracefully, the containers the new ones replaced."""
        retiring = [a for a in done if a.side_by_side]
        if not retiring:
            return
        drain = max(a.step.drain for a in retiring)
        names = ", ".join(a.step.service for a in retiring)
        if drain:
            self.report.info(f"{self.ex.name}: draining old {names} for {drain:g}s")
            self._sleep(drain)
        # One `docker stop` per stop timeout: the engine stops the containers it is given in parallel.
        for timeout in sorted({a.step.stop_timeout for a in retiring}):
            old = [c for a in retiring if a.step.stop_timeout == timeout for c in a.old]
            self._quiet(dc.stop(old, timeout), f"stop old {names}")
        self._quiet(dc.remove([c for a in retiring for c in a.old]), f"remove old {names}")
        self.report.info(f"{self.ex.name}: old {names} stopped")

    def undo(self, done: list[Applied], previous: int | None) -> None:
        """Every touched service back as it was: switch back and drop new containers, or restore `previous`."""
        for a in reversed(done):
            svc = a.step.service
            try:
                if a.side_by_side:
                    if a.switched:
                        self.proxy_driver().switch(svc, a.old_endpoints)
                        self.report.info(f"{self.ex.name}: {svc}: proxy switched back to the old container")
                    if a.new:
                        self.ex.run(dc.remove(a.new, force=True))
                elif set(a.new) == set(a.old):
                    continue  # Compose left it alone (unchanged definition): nothing to restore
                elif previous is not None:
                    base = self.compose_base(previous)
                    self._run(dc.compose_up(base, svc), f"restore {svc}")
                    ids = self.containers(svc, all_states=True)
                    health.wait_healthy(self.ex, ids, svc, a.step.health_timeout)
                    if a.step.port is not None and self.proxy is not None:
                        self.proxy_driver().switch(svc, self.endpoints(ids, a.step.port))
            except ShiplineError as exc:
                self.report.error(f"{self.ex.name}: could not restore {svc}: {exc.message}")
        if previous is not None:
            self.report.info(f"{self.ex.name}: release {previous} serving again")

    def prune(self, settings: DeploySettings) -> None:
        """Remove images and release files older than the kept releases; a running image is never removed."""
        listing = self.ex.run(["ls", "-1", self.layout.releases_dir])
        for name in listing.output.split() if listing.ok else []:
            if name.isdigit() and int(name) not in settings.keep:
                self.ex.run(["rm", "-rf", self.layout.release_dir(int(name))])
        repos = {ref.rsplit(":", 1)[0] for ref in settings.keep_images}
        stale: list[str] = []
        for repo in sorted(repos):
            res = self.ex.run(dc.image_tags(repo))
            # `<none>`: an image whose tag moved on (a rebuild of the same commit); Docker prunes those itself.
            stale += [ref for ref in res.output.split()
                      if res.ok and ref not in settings.keep_images and not ref.endswith(":<none>")]
        if stale:
            res = self.ex.run(dc.remove_images(stale))
            removed = sum(1 for line in res.output.splitlines() if line.startswith("Untagged:"))
            self.report.info(f"{self.ex.name}: pruned {removed} old image tag(s): {shlex.join(stale)}")
