"""One release of a Swarm stack (`deploy.mode: swarm`), through the manager, switched on every node (docs/swarm.md).

The hosts are the swarm's nodes; the first is a manager: the stack is deployed there and the release is recorded
in its ledger. Every host is locked for the whole deploy, since every host's route files are switched. In order:

1. heal what an interrupted deploy left (services of a release that never went live, one-off services);
2. upload the release to the manager, pull the images on every node (so no task waits for a pull);
3. `docker stack deploy` of the services updated in place (database, edge proxy), until Swarm says they converged;
4. the migration and the jobs, each a one-off service that must complete;
5. `docker stack deploy` of the release's versioned services, next to the previous release's;
6. the health barrier: every task of every new service running, which with a health check means healthy;
7. the switch: each node's Traefik file provider pointed at the new service (by name: Swarm's DNS resolves it to
   its running tasks), and confirmed through its API;
8. drain, then remove the previous release's services.

Anything failing before the end is undone by shipline: nodes switched back (the old tasks never stopped), new
services removed, services updated in place rolled back with `docker service rollback`.
"""

from __future__ import annotations

import json
import posixpath
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import yaml

from . import fleet
from . import swarm_commands as sc
from . import swarm_tasks as st
from .cancel import Cancel
from .config import Proxy
from .deployer import HostDeployer, describe
from .errors import ConnectionLost, DeployFailed, ShiplineError, StepFailed
from .layout import RELEASE_FILE, RELEASE_LABEL, SOURCE_DIR
from .ledger import Record
from .plan import DeployPlan
from .proxies import TraefikDriver
from .release_files import FileBlob, ReleaseFiles
from .reporter import Reporter
from .secrets import Secret
from .swarm import NodeState, node_state
from .swarm_plan import SwarmPlan, SwarmService
from .swarm_stack import (
    APP_LABEL,
    BASE_FILE,
    ENV_FILE,
    KIND_LABEL,
    SERVICE_LABEL,
    STACK_FILE,
    SWARM_FILE,
    Paths,
    SwarmRelease,
    object_names,
    object_path,
    object_sources,
    oneoff,
    oneoff_file,
    stack_env,
    stack_values,
    versioned,
)

POLL = 0.5  # seconds between looks at the swarm while waiting


def endpoint(service: str, port: int) -> str:
    """What the edge proxy routes to: a Swarm service by name, which Swarm's DNS resolves on the network they
    share to its running (healthy) tasks, or to its VIP where IPVS exists. Never task addresses: a task Swarm
    replaces later (a crash, a node lost) gets a new address, and the route must still reach it."""
    return f"{service}:{port}"


def to_yaml(doc: Mapping[str, Any]) -> bytes:
    return yaml.safe_dump(dict(doc), sort_keys=False).encode()


def paths_for(home: str, release_dir: str, sp: SwarmPlan) -> Paths:
    base = f"{home}/{release_dir}"
    return Paths(base, posixpath.normpath(f"{base}/{SOURCE_DIR}/{sp.project_dir}"))


def own_files(release: SwarmRelease, number: int, images: Mapping[str, str], paths: Paths,
              meta: Mapping[str, object]) -> dict[str, FileBlob]:
    """The files that name the release number: rendered anew for a rollback over an earlier release's."""
    files = {
        BASE_FILE: FileBlob(to_yaml(release.base(paths))),
        STACK_FILE: FileBlob(to_yaml(release.release(number, images, paths))),
        SWARM_FILE: FileBlob(release.to_json().encode()),
        RELEASE_FILE: FileBlob(json.dumps({**meta, "number": number, "images": dict(images)}, indent=2).encode()),
    }
    for name in release.oneoffs():
        files[oneoff_file(name)] = FileBlob(to_yaml(release.oneoff(number, name, images, paths)))
    return files


def release_files(plan: DeployPlan, number: int, images: Mapping[str, str], source: Mapping[str, bytes],
                  secrets: Mapping[str, str], meta: Mapping[str, object], home: str) -> ReleaseFiles:
    """Every file of a release on the manager: the commit's files, the stack files, stack.env (0600) and the
    secrets and configs taken from variables (0600)."""
    sp = plan.swarm
    assert sp is not None
    layout = plan.targets[0].layout
    paths = paths_for(home, layout.release_dir(number), sp)
    provided = {"COMPOSE_PROJECT_NAME": plan.app, "SHIPLINE_PROXY_DIR": f"{home}/{layout.proxy_dir}",
                "SHIPLINE_DATA_DIR": f"{home}/{layout.data_dir}"}
    values = stack_values(sp, plan.env, secrets, provided)
    files = {f"{SOURCE_DIR}/{path}": FileBlob(source[path], mode) for path, mode in plan.uploads}
    files[ENV_FILE] = FileBlob(stack_env(values).encode(), 0o600)
    contents = {}
    for key, (kind, where) in object_sources(sp).items():
        if kind == "file":
            contents[key] = source[where]
        else:
            contents[key] = values.get(where, "").encode()
            name = key.split(".", 1)
            rel = object_path(name[0], name[1], {}, paths).removeprefix(paths.release_dir + "/")
            files[rel] = FileBlob(contents[key], 0o600)
    release = SwarmRelease(sp, object_names(sp, contents))
    files |= own_files(release, number, images, paths, meta)
    return ReleaseFiles(number, dict(images), files)


class SwarmDeploy:
    """One release across the swarm's hosts; holds what undoing it needs."""

    def __init__(self, hosts: Sequence[HostDeployer], plan: DeployPlan, report: Reporter, *,
                 cancel: Cancel | None = None, sleep: Callable[[float], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        assert plan.swarm is not None
        self.hosts, self.plan, self.sp, self.report = list(hosts), plan, plan.swarm, report
        self.cancel = cancel or Cancel()
        self.sleep = sleep or self.cancel.sleep
        self.clock = clock
        self.manager = self.hosts[0]
        self.stack = self.sp.stack
        self.updated: list[str] = []  # services updated in place by this deploy (rolled back on undo)
        self.created: list[str] = []  # versioned services this deploy created
        self.oneoffs: list[str] = []  # one-off services still to remove
        self.switched: list[tuple[HostDeployer, str, list[str] | None]] = []  # (host, service, what it routed to)
        self._drivers: dict[str, TraefikDriver] = {}

    @property
    def name(self) -> str:
        return self.manager.name

    # -- reading the swarm -----------------------------------------------------------------------------

    def query(self, argv: Sequence[str], what: str) -> str:
        return self.manager.ex.query(argv, what)

    def run(self, argv: Sequence[str], what: str) -> str:
        return self.manager.host.run(argv, what)

    def services(self) -> list[st.ServiceInfo]:
        """Every Swarm service of the app (shipline labels each one it deploys)."""
        ids = self.query(sc.services(APP_LABEL, self.stack), "list the app's services").split()
        if not ids:
            return []
        return [st.ServiceInfo.parse(s) for s in json.loads(self.query(sc.inspect_services(ids), "inspect services"))]

    def service(self, full_name: str) -> st.ServiceInfo | None:
        """The service, or None if it does not exist (`docker service inspect` fails then)."""
        try:
            found = json.loads(self.query(sc.inspect_services([full_name]), f"inspect {full_name}"))
        except StepFailed:
            return None
        return st.ServiceInfo.parse(found[0]) if found else None

    def tasks(self, full_name: str) -> list[dict[str, Any]]:
        ids = self.query(st.list_argv(full_name), f"list the tasks of {full_name}").split()
        if not ids:
            return []
        found: list[dict[str, Any]] = json.loads(self.query(st.inspect_argv(ids), "inspect tasks"))
        return found

    def wait(self, what: str, timeout: float, check: Callable[[], tuple[str, str]]) -> float:
        """Poll `check` until 'healthy'; raise on 'failed' or when `timeout` passes. Returns the seconds waited."""
        start = self.clock()
        while True:
            self.manager.check_lock()
            kind, reason = check()
            if kind == "healthy":
                return self.clock() - start
            if kind == "failed":
                raise DeployFailed(f"{what}: {reason}")
            if self.clock() - start >= timeout:
                raise DeployFailed(f"{what} within {timeout:g}s ({reason})")
            self.sleep(POLL)

    def full(self, name: str) -> str:
        return f"{self.stack}_{name}"

    # -- the nodes -------------------------------------------------------------------------------------

    def check_nodes(self) -> dict[str, HostDeployer]:
        """Node ID -> host. Every host must be an active node of one swarm, the first a manager."""
        states: list[NodeState] = [node_state(h.ex) for h in self.hosts]
        first = states[0]
        if first.state != "active" or not first.manager:
            raise DeployFailed(f"{self.name} is not a manager of a swarm (its swarm state is {first.state!r}); "
                               "deploy.mode: swarm deploys through the first host. Run `shipline swarm init`, or "
                               "list a manager first.")
        for h, s in zip(self.hosts[1:], states[1:], strict=True):
            if s.state != "active" or s.cluster_id != first.cluster_id:
                raise DeployFailed(f"{h.name} is not a node of {self.name}'s swarm (swarm state {s.state!r}); "
                                   "every host must be one of its nodes. Run `shipline swarm init`.")
        return {s.node_id: h for h, s in zip(self.hosts, states, strict=True)}

    def proxy_hosts(self, nodes: Mapping[str, HostDeployer]) -> list[HostDeployer]:
        """The hosts that run a task of the edge proxy: each must be switched. A node that runs one but is not
        a host cannot be switched, so the deploy stops before it starts anything."""
        assert self.sp.proxy is not None
        running = {t.get("NodeID", "") for t in st.current(self.tasks(self.full(self.sp.proxy)))}
        missing = running - set(nodes)
        if missing:
            names = dict(line.split(" ", 1) for line in self.query(sc.node_names(), "list nodes").splitlines() if " " in line)
            raise DeployFailed(f"the edge proxy {self.sp.proxy} runs on {', '.join(sorted(names.get(n, n) for n in missing))}, "
                               "which shipline.yml does not list in `hosts:`, so its routes could not be switched. "
                               "List every node that runs it (or constrain it to the hosts).")
        return [h for node, h in nodes.items() if node in running]

    def driver(self, h: HostDeployer) -> TraefikDriver:
        """The host's Traefik, reached at its task's address on the node's docker_gwbridge (never published)."""
        if h.name not in self._drivers:
            assert self.sp.proxy is not None and isinstance(self.plan.proxy, Proxy)
            ids = h.ex.query(sc.task_containers(self.full(self.sp.proxy)), "find the edge proxy").split()
            gateways = json.loads(h.ex.query(sc.gateway_addresses(), "read docker_gwbridge") or "{}") or {}
            found = [str(gateways[i].get("IPv4Address", "")).split("/")[0] for i in ids if i in gateways]
            if not found or not found[0]:
                raise DeployFailed(f"{h.name}: the edge proxy {self.sp.proxy} has no running task with an address on "
                                   "docker_gwbridge there, so its API cannot be asked to confirm a switch")
            proxy = self.plan.proxy.model_copy(update={"api": f"{found[0]}:{self.sp.api_port}"})
            self._drivers[h.name] = TraefikDriver(h.ex, proxy, self.plan.app, f"{h.host.home()}/{h.layout.proxy_dir}",
                                                  sleep=self.sleep)
        return self._drivers[h.name]

    # -- the release -----------------------------------------------------------------------------------

    def deploy_file(self, number: int, name: str) -> None:
        d = f"{self.manager.host.home()}/{self.manager.layout.release_dir(number)}"
        self.run(sc.stack_deploy(self.stack, f"{d}/{name}", f"{d}/{ENV_FILE}"), f"docker stack deploy ({name})")

    def roll_out(self, number: int) -> None:
        """Steps 3 to 7; on any failure undo what was touched and raise DeployFailed."""
        release = SwarmRelease.from_json(self.manager.ex.read(f"{self.manager.layout.release_dir(number)}/{SWARM_FILE}") or b"{}")
        try:
            nodes = self.check_nodes()
            self.update_in_place(number)
            for job in release.oneoffs():
                self.run_oneoff(number, job)
            self.start_release(number)
            if self.sp.routed:
                self.switch(number, self.proxy_hosts(nodes))
        except BaseException as exc:
            self.fail(exc)

    def update_in_place(self, number: int) -> None:
        before = {s.name: s.spec for s in self.services()}
        self.deploy_file(number, BASE_FILE)
        for s in self.sp.in_place:
            full = self.full(s.name)
            info = self.service(full)
            if info is None:
                raise DeployFailed(f"{full} was not created by docker stack deploy")
            if full in before and before[full] != info.spec:
                self.updated.append(full)
                self.report.info(f"{self.name}: {s.name}: definition changed, Swarm updates it in place")

            took = self.wait(f"{s.name} did not converge", s.health_timeout, partial(self._converged, full))
            self.report.info(f"{self.name}: {s.name} running ({took:.1f}s)")

    def run_oneoff(self, number: int, job: str) -> None:
        full = self.full(oneoff(job, number))
        what = "migration" if job == "migrate" else f"job {job}"
        timeout = self.sp.migrate.timeout if job == "migrate" and self.sp.migrate else self.sp.service(job).health_timeout
        self.report.info(f"{self.name}: release phase: {what} as the one-off service {full}")
        self.oneoffs.append(full)
        self.deploy_file(number, oneoff_file(job))
        done = False
        try:
            took = self.wait(f"the {what} failed", timeout, lambda: st.oneoff_verdict(self.tasks(full)))
            done = True
        finally:
            log = self.report.sink(f"{self.name} {what}")
            self.manager.ex.run(sc.service_logs(full), on_line=log)
            if not done:
                log.end(1)  # its task failed: its whole log is printed with the failed stage
            self.manager.ex.run(sc.remove_services([full]))
            self.oneoffs.remove(full)
        self.report.info(f"{self.name}: {what} completed ({took:.1f}s)")

    def start_release(self, number: int) -> None:
        """The versioned services of `number` beside the previous release's, behind the health barrier."""
        wanted = [self.full(versioned(s.name, number)) for s in self.sp.versioned]
        self.created += wanted
        self.deploy_file(number, STACK_FILE)
        start = self.clock()
        pending = dict(zip(wanted, self.sp.versioned, strict=True))
        while pending:
            self.manager.check_lock()
            for full, s in list(pending.items()):
                info = self.service(full)
                tasks = self.tasks(full)
                replicas = info.replicas if info and info.replicas is not None else max(1, len(st.current(tasks)))
                kind, reason = st.verdict(tasks, replicas) if info else ("failed", "docker stack deploy did not create it")
                if kind == "failed":
                    raise DeployFailed(f"{s.name} did not become healthy: {reason}")
                if kind == "healthy":
                    self.report.info(f"{self.name}: {s.name}: {replicas} task(s) of {full} healthy after {self.clock() - start:.1f}s")
                    del pending[full]
                elif self.clock() - start >= s.health_timeout:
                    raise DeployFailed(f"{s.name} did not become healthy within {s.health_timeout:g}s ({reason})")
            if pending:
                self.sleep(POLL)

    def switch(self, number: int, hosts: Sequence[HostDeployer]) -> None:
        for s in self.sp.routed:
            assert s.port is not None and s.network is not None
            full = self.full(versioned(s.name, number)) if s.versioned else self.full(s.name)
            if not st.addresses(self.tasks(full), s.network, s.port):
                raise DeployFailed(f"{s.name}: no running task of {full} has an address on {s.network}, the network "
                                   f"the edge proxy shares with it")
            endpoints = [endpoint(full, s.port)]
            for h in hosts:
                self.manager.check_lock()
                driver = self.driver(h)
                self.switched.append((h, s.name, driver.routed(s.name)))  # before: a switch cut short is undone too
                start = self.clock()
                driver.switch(s.name, endpoints)
                self.report.info(f"{h.name}: {s.name}: Traefik switched to {', '.join(endpoints)} and confirmed in "
                                 f"{self.clock() - start:.2f}s")

    # -- undo, retire, heal ----------------------------------------------------------------------------

    def fail(self, exc: BaseException) -> None:
        why = describe(exc)
        reconnected = True
        if isinstance(exc, ConnectionLost):
            reconnected = all(h.recover() for h in self.hosts)
        if reconnected and (self.switched or self.created or self.updated or self.oneoffs):
            self.report.warn(f"{self.name}: {why}; undoing the release")
            self.undo()
        if isinstance(exc, KeyboardInterrupt):
            raise exc
        if not reconnected:
            raise ConnectionLost(f"{why}, and a host stayed unreachable. Nothing that served traffic was stopped; the "
                                 "next `shipline deploy` repairs what this one left.") from None
        raise DeployFailed(f"{why}. The previous release is serving.") from None

    def undo(self) -> bool:
        """Every node switched back, the new services removed, in-place updates rolled back. True if all went."""
        ok = True
        with self.cancel.shielded():
            for h, svc, old in reversed(self.switched):
                ok &= self._attempt(f"switch {svc} back on {h.name}", partial(self._switch_back, h, svc, old))
            self.switched = []
            gone = self.created + self.oneoffs
            if gone:
                ok &= self._attempt("remove the new services", lambda: self.manager.ex.run(sc.remove_services(gone)))
                self.report.info(f"{self.name}: removed {', '.join(gone)}")
            self.created, self.oneoffs = [], []
            for full in reversed(self.updated):
                ok &= self._attempt(f"roll {full} back", partial(self._roll_back, full))
            self.updated = []
        return ok

    def _attempt(self, what: str, action: Callable[[], object]) -> bool:
        try:
            action()
            return True
        except Exception as exc:  # one part failing to restore must not stop the others
            self.report.error(f"{self.name}: could not {what}: {describe(exc)}")
            return False

    def _switch_back(self, h: HostDeployer, svc: str, old: list[str] | None) -> None:
        driver = self.driver(h)
        if old:
            driver.switch(svc, old)
            self.report.info(f"{h.name}: {svc}: Traefik switched back to {', '.join(old)}")
        elif old is None:
            driver.forget(svc)

    def _roll_back(self, full: str) -> None:
        self.run(sc.rollback_service(full), f"roll {full} back")
        timeout = max(s.health_timeout for s in self.sp.in_place) if self.sp.in_place else 60
        self.wait(f"{full} did not come back", timeout, partial(self._converged, full))
        self.report.info(f"{self.name}: {full} rolled back to its previous definition")

    def _converged(self, full: str) -> tuple[str, str]:
        info = self.service(full)
        return st.converged(info, self.tasks(full)) if info else ("failed", "the service is gone")

    def retire(self, number: int) -> None:
        """Drain, then remove every earlier release's versioned services (Swarm stops their tasks gracefully)."""
        self.manager.check_lock()
        old = [s.name for s in self.services() if s.label(RELEASE_LABEL) not in ("", str(number))]
        if not old:
            return
        drain = max((s.drain for s in self.sp.routed), default=0)
        if drain:
            self.report.info(f"{self.name}: draining {', '.join(old)} for {drain:g}s")
            self.sleep(drain)
        self.manager.ex.query(sc.remove_services(old), "remove the previous release's services")
        self.report.info(f"{self.name}: removed {', '.join(old)}")

    def heal(self, live: Record | None) -> list[str]:
        """Under the locks, before anything else: remove what no release serves (an interrupted deploy's services
        and one-off services), keeping whatever a node's proxy routes to; nodes that route elsewhere than the
        rest are switched to the release that serves."""
        found = [s for s in self.services() if s.label(RELEASE_LABEL)]
        keep: set[str] = set()
        for s in self.sp.versioned:
            mine = {int(v.label(RELEASE_LABEL)): v.name for v in found if v.label(KIND_LABEL) == "release"
                    and v.label(SERVICE_LABEL) == s.name and v.label(RELEASE_LABEL).isdigit()}
            serving = live.number if live and live.number in mine else None
            if s.port is not None:
                serving = self._heal_routes(s, mine, serving)
            if serving is not None:
                keep.add(mine[serving])
        leftovers = sorted(v.name for v in found if v.name not in keep)
        if not leftovers:
            return []
        self.manager.ex.run(sc.remove_services(leftovers))
        line = f"removed {', '.join(leftovers)}, which no live release runs (an interrupted deploy left them)"
        self.report.info(f"{self.name}: healed: {line}")
        return [line]

    def _heal_routes(self, s: SwarmService, mine: dict[int, str], serving: int | None) -> int | None:
        """The release the nodes' route files send `s` to (the live one when they disagree); nodes that route
        elsewhere are switched to it."""
        assert s.port is not None
        by_endpoint = {endpoint(full, s.port): n for n, full in mine.items()}
        routed: dict[str, set[int]] = {}
        for h in self.hosts:
            try:
                driver = self.driver(h)
            except ShiplineError:
                continue  # no proxy task on that node
            routed[h.name] = {by_endpoint[e] for e in driver.routed(s.name) or [] if e in by_endpoint}
        seen = set().union(*routed.values()) if routed else set()
        if serving is None and seen:
            serving = max(seen)
        if serving is None:
            return None
        for h in self.hosts:
            if h.name in routed and routed[h.name] != {serving}:
                self.driver(h).switch(s.name, [endpoint(mine[serving], s.port)])
                self.report.info(f"{h.name}: healed: {s.name} routed to release {serving} again")
        return serving


def go_live(deploy: SwarmDeploy, record: Record, files: dict[str, str], images: dict[str, str],
            login: tuple[tuple[str, ...], Secret] | None) -> None:
    """Heal, pull everywhere, roll out through the manager, retire; the manager's ledger gets the digests."""
    manager = deploy.manager
    deploy.heal(manager.live())

    def prepare(h: HostDeployer) -> dict[str, str]:
        """The proxy's route directory (its bind mount) and the images on every node, so no task waits for a pull.
        The manager logs in too: `--with-registry-auth` hands its credentials to the nodes' tasks."""
        h.ex.run(["mkdir", "-p", h.layout.proxy_dir]).check(f"{h.name}: create the proxy directory")
        return h.pull(images, login)

    results = fleet.each(deploy.hosts, prepare)
    error = fleet.first_error(results)
    if error is not None:
        raise error
    manager.pending = replace(record, digests=results[0][1] or {}, files=files)
    deploy.roll_out(record.number)
    try:
        deploy.retire(record.number)
    except ShiplineError as exc:  # every node is switched: the release is live whatever happens to the old ones
        deploy.report.warn(f"{deploy.name}: release {record.number} is live, but removing the previous release's "
                           f"services failed ({exc.message}); the next deploy removes them")


def read_release(manager: HostDeployer, number: int) -> SwarmRelease:
    raw = manager.ex.read(f"{manager.layout.release_dir(number)}/{SWARM_FILE}")
    if raw is None:
        raise DeployFailed(f"{manager.name}: release {number} was not deployed to a swarm (no {SWARM_FILE}); deploy "
                           "its commit again with `shipline deploy --ref SHA` instead.")
    return SwarmRelease.from_json(raw)


def rollback_files(manager: HostDeployer, source: int, number: int, images: Mapping[str, str],
                   meta: Mapping[str, object]) -> dict[str, FileBlob]:
    """The files a rollback to release `source` renders for itself, from that release's plan as deployed."""
    release = read_release(manager, source)
    paths = paths_for(manager.host.home(), manager.layout.release_dir(number), release.plan)
    return own_files(release, number, images, paths, meta)
