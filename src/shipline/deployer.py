"""Deploy one release to one host: lock, upload, pull, migrate, roll out in order, prune; undo on failure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from . import docker_commands as dc
from . import health, lock
from .errors import DeployFailed, ShiplineError
from .executors.base import Executor
from .layout import COMPOSE_FILE, ENV_FILE, OVERRIDE_FILE, RELEASE_FILE, HostLayout
from .plan import HostDeploy, override_file
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


class HostDeployer:
    def __init__(self, ex: Executor, target: HostDeploy, app: str, report: Reporter) -> None:
        self.ex, self.target, self.app, self.report = ex, target, app, report
        self.layout: HostLayout = target.layout

    def compose_base(self, release: int) -> list[str]:
        return dc.compose(self.app, self.layout.compose_files(release), self.layout.env_file(release))

    def _run(self, argv: Sequence[str], what: str, stdin: bytes | None = None) -> None:
        self.ex.run(argv, stdin=stdin, on_line=self.report.sink(f"{self.ex.name}")).check(what)

    def upload(self, files: ReleaseFiles) -> None:
        d = self.layout.release_dir(files.number)
        self._run(["mkdir", "-p", d], "create release directory")
        self.ex.put(f"{d}/{ENV_FILE}", files.env, 0o600)
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
        touched: list[str] = []
        try:
            for step in self.target.rollout:
                if step.migrate_before:
                    argv = [*base, *step.migrate_before[1:]]
                    self.report.info(f"{self.ex.name}: migrate with the new {step.service} image")
                    self._run(argv, "migration")
                touched.append(step.service)
                self._run([*base, "up", "--detach", "--no-deps", "--no-build", step.service], f"start {step.service}")
                waited = health.wait_healthy(self.ex, base, step.service, step.health_timeout)
                self.report.info(f"{self.ex.name}: {step.service} healthy after {waited:.1f}s")
        except ShiplineError as exc:
            if previous is None or not touched:
                raise DeployFailed(f"{self.ex.name}: {exc.message}") from None
            self.report.warn(f"{self.ex.name}: {exc.message}; rolling back {', '.join(touched)} to release {previous}")
            self.restore(previous, touched)
            raise DeployFailed(f"{self.ex.name}: {exc.message}. Rolled back to release {previous}.") from None

    def restore(self, previous: int, services: list[str]) -> None:
        base = self.compose_base(previous)
        for svc in services:
            self._run([*base, "up", "--detach", "--no-deps", "--no-build", svc], f"restore {svc}")
        for svc in services:
            timeout = next((s.health_timeout for s in self.target.rollout if s.service == svc), 60.0)
            health.wait_healthy(self.ex, base, svc, timeout)
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
            stale += [ref for ref in res.output.split() if res.ok and ref not in settings.keep_images]
        if stale:
            res = self.ex.run(dc.remove_images(stale))
            removed = sum(1 for line in res.output.splitlines() if line.startswith("Untagged:"))
            self.report.info(f"{self.ex.name}: pruned {removed} old image tag(s)")
