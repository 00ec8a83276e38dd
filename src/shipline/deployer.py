"""One host's part of a release: its lock and ledger, healing, upload and pull, migrations, the rollout in order
(each service by its strategy), undo on any failure, retiring and pruning.

The pipeline decides what runs when across hosts; this module decides nothing across hosts.
"""

from __future__ import annotations

import json
import posixpath
import shlex
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from typing import Any

from . import changes, ledger, lock, schedule
from . import docker_commands as dc
from .cancel import Cancel
from .changes import ServiceState
from .errors import ConnectionLost, DeployFailed, ShiplineError
from .executors.base import Executor
from .layout import RELEASE_FILE, RELEASE_LABEL
from .ledger import Record
from .plan import DeployPlan, HostTarget, ServiceRollout
from .release_files import FileBlob, ReleaseFiles
from .reporter import Reporter
from .secrets import Secret
from .strategies import Applied, RolloutHost, for_step
from .strategies.base import Container

MAKE_DIRS = 'mkdir -p -- "$@" && chmod 0700 -- "$1"'  # $1: the release directory, then every other one
RECONNECT_DELAYS = (1.0, 2.0, 4.0, 8.0)  # bounded backoff: about 15 s before a host counts as unreachable


class HostDeployer:
    def __init__(self, ex: Executor, target: HostTarget, plan: DeployPlan, report: Reporter, *,
                 cancel: Cancel | None = None, sleep: Callable[[float], None] | None = None,
                 host: RolloutHost | None = None, parallel: bool = True) -> None:
        self.ex, self.target, self.plan, self.report = ex, target, plan, report
        self.cancel = cancel or Cancel()
        self._sleep = sleep or self.cancel.sleep
        # Services of a wave roll out in threads (False: one after another, as tests of the order use).
        self.parallel = parallel
        self.layout = target.layout
        self.host = host or RolloutHost(ex, plan.app, target.layout, plan.proxy, report, sleep=self._sleep)
        self.held: lock.HeldLock | None = None
        self.ledger: list[Record] = []
        self.applied: list[Applied] = []  # services this deploy touched, in order
        self._applied_lock = threading.Lock()  # services of one wave roll out in parallel threads
        self._networks: set[str] = set()  # the project's networks, once `service_states` has read them
        # What ran when `read_running` looked (by `prepare`, before anything of this release started).
        self._running: dict[str, list[tuple[str, str]]] | None = None  # service -> (container, release label)
        self._running_images: dict[str, str] = {}  # container -> image ID
        self._engine_networks: set[str] | None = None
        self._staged: tuple[int, dict[str, str], dict[str, Any]] | None = None  # release, file digests, resolved project
        self.undone = False  # the touched services were put back (by this host's failure or the fleet's)
        self.pending: Record | None = None  # this release as the host will record it (with digests) at the end

    @property
    def name(self) -> str:
        return self.ex.name

    # -- lock and ledger --------------------------------------------------------------------------------

    def lock(self, holder: str, commit: str, wait: float | None = None) -> None:
        self.held = lock.acquire(
            self.ex, self.layout, holder=holder, commit=commit, ttl=self.plan.lock_ttl,
            wait=self.plan.lock_wait if wait is None else wait,
            on_wait=lambda info: self.report.info(f"{self.name}: waiting for the deploy lock, {info.describe()}"))

    def unlock(self) -> None:
        if self.held is not None:
            self.held.release()
            self.held = None

    def check_lock(self) -> None:
        """Between steps: stop here if the run was cancelled or the lock was lost."""
        self.cancel.check()
        if self.held is not None:
            self.held.check()

    def read_ledger(self) -> list[Record]:
        self.ledger = ledger.decode(self.ex.read(self.layout.ledger))
        return self.ledger

    def release_numbers(self) -> list[int]:
        """Release directories on the host: numbers a ledger-less older shipline used count as taken too."""
        return [int(n) for n in self.ex.listdir(self.layout.releases_dir) or [] if n.isdigit()]

    def record(self, record: Record) -> None:
        self.ex.append(self.layout.ledger, ledger.encode(record))
        self.ledger = [r for r in self.ledger if r.number != record.number] + [record]

    def live(self) -> Record | None:
        return ledger.live(self.ledger)

    # -- healing ----------------------------------------------------------------------------------------

    def heal(self, number: int) -> list[str]:
        """Repair what interrupted deploys left, never touching what serves traffic; return what was repaired."""
        repaired = []
        for r in ledger.unfinished(self.ledger):
            self.record(r.finished("interrupted", r.stages, f"its deploy ended without finishing (killed, or its "
                                                            f"connection dropped); found by release {number}"))
            repaired.append(f"release {r.number} ({r.short_sha}, by {r.actor or 'unknown'}) never finished: marked interrupted")
        succeeded = {r.number for r in self.ledger if r.status == ledger.SUCCEEDED}
        containers, oneoffs = self.host.labelled()
        for step in self.target.rollout:
            if step.side_by_side:
                try:
                    repaired += self._heal_service(step.service, containers.get(step.service, []), succeeded)
                except ShiplineError as exc:  # the rollout itself may be what repairs it (a proxy that is down)
                    self.report.warn(f"{self.name}: could not check {step.service} for leftovers: {exc.message}")
        if oneoffs:
            self.ex.run(dc.remove(oneoffs, force=True))
            repaired.append(f"removed {len(oneoffs)} stopped one-off container(s) (an interrupted migration)")
        for line in repaired:
            self.report.info(f"{self.name}: healed: {line}")
        return repaired

    def _heal_service(self, svc: str, found: list[Container], succeeded: set[int]) -> list[str]:
        step = next(s for s in self.target.rollout if s.service == svc)
        stopped = [c.id for c in found if not c.running]
        running = [c for c in found if c.running]
        if len(running) <= 1 and not stopped:
            return []  # nothing beside what serves
        keep = self._serving(step.service, running, succeeded) if running else []
        leftovers = [c.id for c in running if c.id not in keep]
        done = []
        if leftovers:
            if self.host.routed(step):
                self.host.sleep(step.drain)  # the proxy may have sent them requests until a moment ago
            self.host.stop(leftovers, step.stop_timeout, f"leftover {svc}")
            done.append(f"{svc}: stopped {len(leftovers)} container(s) an interrupted deploy left beside the serving one")
        if stopped:
            self.ex.run(dc.remove(stopped, force=True))
            done.append(f"{svc}: removed {len(stopped)} stopped container(s)")
        return done

    def _serving(self, svc: str, running: list[Container], succeeded: set[int]) -> list[str]:
        """The containers to keep: what the proxy routes to, else those of successful releases, else the newest."""
        step = next(s for s in self.target.rollout if s.service == svc)
        if self.host.routed(step) and len(running) > 0:
            assert step.port is not None
            routes = self.host.proxy_driver().routed(svc) or []
            by_endpoint = dict(zip(self.host.endpoints([c.id for c in running], step.port), running, strict=True))
            serving = [by_endpoint[e].id for e in routes if e in by_endpoint]
            if serving:
                return serving
        settled = [c.id for c in running if c.release is None or c.release in succeeded]
        if not settled:
            settled = [max(running, key=lambda c: c.release or 0).id]
        if self.host.routed(step):
            assert step.port is not None
            self.host.switch(svc, self.host.endpoints(settled, step.port))  # its route file pointed at nothing running
        return settled

    # -- the release ------------------------------------------------------------------------------------

    def upload(self, files: ReleaseFiles) -> None:
        d = self.layout.release_dir(files.number)
        # Data mounts that name a directory exist before Compose starts anything, owned by the deploy user
        # (Docker would create them as root); one with a file name (`acme.json`) is left to whoever provides it.
        data = [self.layout.data_path(m.path) for m in self.plan.data_dirs if "." not in posixpath.basename(m.path)]
        inner = sorted({posixpath.dirname(f"{d}/{name}") for name in files.files} - {d})
        # One command (each costs a round trip); the release directory is 0700 before any file is in it, since
        # its env file holds secrets.
        self.ex.run(["sh", "-c", MAKE_DIRS, "mkdirs", d, self.layout.releases_dir, self.layout.proxy_dir,
                     self.layout.data_dir, *data, *inner]).check("create the release's directories")
        for name, blob in files.files.items():
            self.ex.put(f"{d}/{name}", blob.data, blob.mode)

    def copy_release(self, source: int, number: int, own: dict[str, FileBlob]) -> None:
        """A rollback reuses an earlier release's files as they were deployed, under its own number."""
        src, dst = self.layout.release_dir(source), self.layout.release_dir(number)
        copied = self.ex.run(["cp", "-a", src, dst])
        if not copied.ok and not self.has_release(source):
            raise DeployFailed(f"{self.name}: release {source}'s files are no longer on the host (pruned); "
                               "deploy its commit again with `shipline deploy --ref SHA` instead.")
        copied.check("copy release files")
        for name, blob in own.items():
            self.ex.put(f"{dst}/{name}", blob.data, blob.mode)

    def has_release(self, number: int) -> bool:
        return RELEASE_FILE in (self.ex.listdir(self.layout.release_dir(number)) or [])

    def pull(self, images: dict[str, str], login: tuple[tuple[str, ...], Secret] | None) -> dict[str, str]:
        """Pull every image; return the digest each tag had when pulled (what the host will run)."""
        self.fetch(images, login)
        return self.digests(images)

    def fetch(self, images: dict[str, str], login: tuple[tuple[str, ...], Secret] | None) -> None:
        """Pull the images the host does not have, all at once (a tag is immutable here, one commit, one image,
        so a present one needs no pull)."""
        if not images:
            return
        present = self.image_ids(images.values())
        missing = [ref for ref in dict.fromkeys(images.values()) if ref not in present]
        if missing and login:
            argv, password = login
            self.host.run(argv, "registry login", stdin=password.reveal().encode())
        self.check_lock()
        if missing:
            with ThreadPoolExecutor(max_workers=len(missing)) as pool:
                pulls = [pool.submit(self.host.run, dc.pull(ref), f"pull {ref}") for ref in missing]
            for done in pulls:
                done.result()
        already = f", {len(images) - len(missing)} already on the host" if len(missing) < len(images) else ""
        self.report.info(f"{self.name}: pulled {len(missing)} image(s){already}")

    def digests(self, images: dict[str, str]) -> dict[str, str]:
        """service -> the digest its image's tag had when the host pulled it (what the host runs)."""
        if not images:
            return {}
        lines = self.ex.query(dc.repo_digests(list(images.values())), "read image digests").splitlines()
        digests = {}
        for (svc, ref), line in zip(images.items(), lines, strict=False):
            try:
                found = [d for d in json.loads(line) if d.split("@")[0] == ref.rsplit(":", 1)[0]]
            except (ValueError, AttributeError):
                found = []
            if found:
                digests[svc] = found[0].split("@", 1)[1]
        return digests

    def image_ids(self, refs: Iterable[str]) -> dict[str, str]:
        """ref -> the ID of the image it names on the host, for those present (one `docker image inspect`)."""
        wanted = sorted(set(refs))
        if not wanted:
            return {}
        res = self.ex.run(dc.image_ids(wanted))  # exit status 1 when one is absent: the others still print
        by_tag: dict[str, str] = {}
        for line in res.output.splitlines():
            tags, _, image_id = line.rpartition(" ")
            try:
                names = json.loads(tags) if tags.startswith("[") else []
            except ValueError:
                continue
            by_tag |= {t: image_id for t in names if isinstance(t, str)}
        return {ref: by_tag[full] for ref in wanted if (full := ref if ":" in ref.rsplit("/", 1)[-1] else f"{ref}:latest") in by_tag}

    def stage(self, number: int, put_files: Callable[[HostDeployer], dict[str, str]]) -> None:
        """What needs no image yet, done while the images are still being built and tested: the release's files
        uploaded and its Compose project resolved, and what runs now read, at the same time."""
        def upload_and_resolve() -> tuple[dict[str, str], dict[str, Any]]:
            files = put_files(self)
            return files, self.resolve(number)

        with ThreadPoolExecutor(max_workers=2) as pool:
            resolved = pool.submit(upload_and_resolve)
            running = pool.submit(self.read_running)
        running.result()
        self._staged = (number, *resolved.result())

    def prepare(self, number: int, put_files: Callable[[HostDeployer], dict[str, str]], images: dict[str, str],
                login: tuple[tuple[str, ...], Secret] | None) -> tuple[dict[str, str], dict[str, str], dict[str, ServiceState]]:
        """Staged (`stage`, unless that was done already) and the images pulled, at the same time: each is a few
        round trips, and one after another they took 0.75 s. Returns the image digests, the files' digests and
        each service's state (`service_states`)."""
        if self._staged is None or self._staged[0] != number:
            with ThreadPoolExecutor(max_workers=2) as pool:
                staged = pool.submit(self.stage, number, put_files)
                fetched = pool.submit(self.fetch, images, login)
            staged.result()
            fetched.result()
        else:
            self.fetch(images, login)
        assert self._staged is not None
        _, files, config = self._staged
        self._staged = None
        with ThreadPoolExecutor(max_workers=1) as pool:
            digests = pool.submit(self.digests, images)
            states = self.service_states(number, config, files)
        return digests.result(), files, states

    def resolve(self, number: int) -> dict[str, Any]:
        """Release `number`'s Compose project as Compose resolves it (`docker compose config`)."""
        out = self.ex.query(dc.compose_config(self.host.compose_base(number)), "resolve the Compose project")
        try:
            config: dict[str, Any] = json.loads(out[out.index("{"):])
        except ValueError:
            raise DeployFailed(f"{self.name}: `docker compose config` printed no JSON") from None
        return config

    def service_states(self, number: int, config: dict[str, Any], files: Mapping[str, str]) -> dict[str, ServiceState]:
        """What each service of release `number` would run: image ID, resolved definition, mounted files."""
        self._networks = {n.get("name", k) for k, n in (config.get("networks") or {}).items()
                          if isinstance(n, dict) and not n.get("external")}
        refs = {svc: spec["image"] for svc, spec in config.get("services", {}).items() if spec.get("image")}
        ids = self.image_ids(refs.values())
        release_dir = f"{self.host.home()}/{self.layout.release_dir(number)}"
        return changes.service_states(config, release_dir, {s: ids.get(r, "") for s, r in refs.items()}, files)

    def read_running(self) -> None:
        """What runs now, for `unchanged` and `roll_out`: each service's containers with their release label and
        image, and the engine's networks."""
        running: dict[str, list[tuple[str, str]]] = {}  # service -> (container, release label)
        for line in self.ex.query(dc.project_containers(self.plan.app, RELEASE_LABEL), "list containers").splitlines():
            cid, svc, *made_by = line.split()
            running.setdefault(svc, []).append((cid, made_by[0] if made_by else ""))
        self._running = running
        self._running_images = dict(line.split() for line in self.ex.query(
            dc.container_images([c for found in running.values() for c, _ in found]), "inspect containers").splitlines()
        ) if running else {}
        self._engine_networks = self.existing_networks()

    def existing_networks(self) -> set[str]:
        return set(self.ex.query(dc.network_names(), "list networks").split())

    def running_services(self) -> set[str]:
        out = self.ex.query(dc.project_containers(self.plan.app, RELEASE_LABEL), "list containers")
        return {line.split()[1] for line in out.splitlines() if len(line.split()) > 1}

    def unchanged(self, states: Mapping[str, ServiceState]) -> set[str]:
        """The services that keep their containers: same state as the live release, and what runs is that.

        Says per service what changed, or since which release it has been running unchanged.
        """
        live = self.live()
        recorded = {r.number: r.services for r in self.ledger}
        if self._running is None:
            self.read_running()
        running, images, self._running = self._running or {}, self._running_images, None  # read once per release
        keep = set()
        for step in self.target.rollout:
            svc, new = step.service, states.get(step.service)
            if new is None:
                continue
            old = ServiceState.from_dict(live.services.get(svc)) if live else None
            reason = changes.change_reason(new, old, running=bool(running.get(svc)))
            if reason is None:
                for cid, label in running[svc]:
                    made = recorded.get(int(label), {}).get(svc) if label.isdigit() else None
                    if images.get(cid) != new.image or (label and made != new.as_dict()):
                        reason = "its running container is not the live release's (an interrupted deploy left it)"
            if reason is None:
                keep.add(svc)
                self.report.info(f"{self.name}: {svc}: unchanged (same image, definition and files as release "
                                 f"{live.number if live else '?'}), left running")
            else:
                self.report.info(f"{self.name}: {svc}: {reason}")
        return keep

    def roll_out(self, number: int, previous: int | None, keep: set[str] | frozenset[str] = frozenset(), *,
                 migrate: bool = True) -> None:
        """Migrate (unless another host of the fleet does), then every service not in `keep`, in waves: services of
        a wave (which do not depend on each other) roll out and are gated at the same time. Once all are switched,
        Docker's own health status must agree. On any failure undo what was touched and raise DeployFailed."""
        base = self.host.compose_base(number)
        self.applied, self.undone = [], False
        self.host.wave_failed.clear()
        steps = {s.service: s for s in self.target.rollout if s.service not in keep}
        proxy = self.plan.proxy.service if self.plan.proxy else None
        migrated = next((s for s, step in steps.items() if step.migrate_before), None)
        networks, self._engine_networks = self._engine_networks, None  # read by `prepare`, or now
        if self.parallel and self._networks - (networks if networks is not None else self.existing_networks()):
            # Compose creates a missing network in each `up` that needs it: two at once make two networks of one
            # name. The first deploy of a project (or of a new network) goes one service at a time.
            self.parallel = False
            self.report.info(f"{self.name}: new networks are created: services roll out one at a time this once")
        try:
            for wave in schedule.waves(list(steps), {s: steps[s].after for s in steps}, proxy, migrated):
                self.check_lock()
                for step in (steps[s] for s in wave if steps[s].migrate_before and migrate):  # before the wave
                    assert step.migrate_before is not None
                    self.report.info(f"{self.name}: release phase: migrate with the new {step.service} image")
                    self.host.run([*base, *step.migrate_before], "migration")
                    self.report.info(f"{self.name}: migrations done")
                self._wave([steps[s] for s in wave], number)
            self.confirm()
        except BaseException as exc:
            self.fail(exc, previous)

    def _wave(self, steps: Sequence[ServiceRollout], number: int) -> None:
        if len(steps) == 1 or not self.parallel:
            for step in steps:
                self._service(step, number)
            return
        self.report.info(f"{self.name}: {', '.join(s.service for s in steps)} together (none depends on another)")
        with ThreadPoolExecutor(max_workers=len(steps)) as pool:
            futures = [pool.submit(self._service, s, number) for s in steps]
            try:
                done, _ = wait(futures, return_when="FIRST_EXCEPTION")
                if any(f.exception() for f in done):
                    self.host.wave_failed.set()  # the others stop waiting; then everything touched is undone
                wait(futures)
            except BaseException:  # a signal in this thread: stop the others, then unwind
                self.host.wave_failed.set()
                wait(futures)
                raise
        errors = [e for f in futures if (e := f.exception()) is not None]
        if errors:
            raise next((e for e in errors if not isinstance(e, KeyboardInterrupt)), errors[0])

    def _service(self, step: ServiceRollout, number: int) -> None:
        self.check_lock()
        applied = Applied(step, old=self.host.containers(step.service))
        with self._applied_lock:
            self.applied.append(applied)  # from here on, an undo knows what this service had
        for_step(step).roll_out(self.host, number, applied)

    def confirm(self) -> None:
        """Docker's own health status must agree with the readiness probes before any old container goes; with
        several hosts, also the health barrier after a batch switched (a crash then fails the batch)."""
        for a in self.applied:
            if a.new and a.step.strategy != "job":  # a job has exited 0 by now: its gate was its completion
                self.host.wait_healthy(a.new, a.step.service, a.step.health_timeout)

    def fail(self, exc: BaseException, previous: int | None) -> None:
        """Undo every touched service (reconnecting first if the connection dropped) and raise the right error."""
        why = describe(exc)
        reconnected = True
        if isinstance(exc, ConnectionLost):
            reconnected = self.recover()
        restored = False
        if reconnected and self.applied:
            self.report.warn(f"{self.name}: {why}; undoing {', '.join(a.step.service for a in self.applied)}")
            restored = self.undo(previous)
        if isinstance(exc, KeyboardInterrupt):
            raise exc
        if not reconnected:
            raise ConnectionLost(
                f"{self.name}: {why}, and it stayed unreachable ({len(RECONNECT_DELAYS)} attempts over "
                f"{sum(RECONNECT_DELAYS):g}s). Nothing that served traffic was stopped; the next `shipline deploy` "
                "repairs what this one left on the host.") from None
        back = f" Release {previous} is serving." if previous is not None and restored else ""
        raise DeployFailed(f"{self.name}: {why}.{back}") from None

    def recover(self) -> bool:
        """Reconnect with bounded backoff and take the lock again (the old connection's holder died with it)."""
        self.held = None
        for delay in RECONNECT_DELAYS:
            self._sleep(delay)
            try:
                self.ex.reconnect()
                self.lock("shipline (recovering a dropped connection)", "undo", wait=20)
            except ShiplineError as exc:
                self.report.warn(f"{self.name}: reconnecting failed: {exc.message}")
                continue
            self.report.info(f"{self.name}: reconnected")
            return True
        return False

    def undo(self, previous: int | None) -> bool:
        """Every touched service back as it was; True when all of them are. Signals wait until it is done."""
        ok, self.undone = True, True
        with self.cancel.shielded():
            for a in reversed(self.applied):
                try:
                    for_step(a.step).undo(self.host, a, previous)
                except Exception as exc:  # one service failing to restore must not stop the others
                    ok = False
                    self.report.error(f"{self.name}: could not restore {a.step.service}: {describe(exc)}")
        if ok and previous is not None:
            self.report.info(f"{self.name}: release {previous} serving again")
        return ok

    def retire(self) -> None:
        self.check_lock()
        for strategy in {id(s): s for s in (for_step(a.step) for a in self.applied)}.values():
            strategy.retire(self.host, [a for a in self.applied if for_step(a.step) is strategy])

    def prune(self, numbers: set[int], images: set[str]) -> None:
        """Remove release files and images that no kept release uses; what runs is never removed."""
        old = [self.layout.release_dir(n) for n in self.release_numbers() if n not in numbers]
        if old:
            self.ex.run(["rm", "-rf", *old])
        repos = sorted({ref.rsplit(":", 1)[0] for ref in images})
        stale: list[str] = []
        for line in self.ex.query(dc.image_tags(repos), "list the app's images").splitlines() if repos else []:
            ref, _, image_id = line.partition(" ")
            if ref.endswith(":<none>"):
                stale.append(image_id)  # what a tag pointed to before it moved: nothing can roll back to it
            elif ref not in images:
                stale.append(ref)
        if stale:
            res = self.ex.run(dc.remove_images(stale))  # an image a container still uses is refused, and kept
            removed = sum(1 for line in res.output.splitlines() if line.startswith(("Untagged:", "Deleted:")))
            self.report.info(f"{self.name}: pruned {removed} old image(s): {shlex.join(stale)}")


def describe(exc: BaseException) -> str:
    if isinstance(exc, ShiplineError):
        return exc.message
    if isinstance(exc, KeyboardInterrupt):
        return str(exc.args[0]) if exc.args else "interrupted"
    return f"{type(exc).__name__}: {exc}"


@contextmanager
def locked(deployers: list[HostDeployer], holder: str, commit: str) -> Iterator[None]:
    """Every host's lock, taken in a fixed order (two fleets' deploys cannot deadlock), released whatever happens."""
    try:
        for d in sorted(deployers, key=lambda d: d.name):
            d.lock(holder, commit)
        yield
    finally:
        for d in deployers:
            with suppress(Exception):  # a dropped connection has released it already
                d.unlock()
