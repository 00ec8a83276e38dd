"""The pipeline: connect -> (lock and stage the release on the hosts | checkout, build, test) -> publish -> deploy,
each stage timed and recorded.

It reads only the compiled plan. The hosts are the source of truth: under every host's deploy lock the
release number is allocated from their ledgers, leftovers of interrupted deploys are repaired, and the
release is recorded on each host when it starts and when it ends.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from . import docker_commands as dc
from . import fleet, gitrepo, ledger, reuse, swarm_deploy
from .cancel import Cancel
from .deployer import HostDeployer, describe, locked
from .errors import ConfigError, ConnectionLost, HostKeyError, NotFound, ShiplineError, StepFailed
from .executors.base import Executor
from .executors.local import LocalExecutor
from .layout import OVERRIDE_FILE, RELEASE_FILE
from .ledger import Record
from .plan import (
    BuildStep,
    DeployPlan,
    HostTarget,
    Plan,
    Trigger,
    compile_plan,
    deploy_plan,
    secrets_in_build_args,
)
from .project import Project
from .registry import Registry
from .release_files import own_files, render
from .reporter import Reporter
from .secrets import Masker, Secret, resolve_secrets

Connect = Callable[[int, HostTarget], Executor]
PER_RELEASE = (OVERRIDE_FILE, RELEASE_FILE)  # files that name the release number: they differ whatever changed


@dataclass
class Context:
    """Everything a pipeline run needs from the outside world, passed explicitly (no globals)."""

    env: Mapping[str, str]
    report: Reporter
    connect: Connect
    masker: Masker = field(default_factory=Masker)
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    cancel: Cancel = field(default_factory=Cancel)  # Ctrl-C / SIGTERM, acted on at safe points
    sleep: Callable[[float], None] | None = None  # tests replace the waits (drain, reconnect backoff)

    @property
    def local(self) -> LocalExecutor:
        return LocalExecutor(self.masker, cancel=self.cancel)


def make_trigger(project: Project, ref: str | None, source: str = "cli", actor: str | None = None) -> Trigger:
    repo = project.repo_root
    ref = ref or gitrepo.default_ref(repo, project.config.branch)
    sha = gitrepo.resolve(repo, ref)
    short = gitrepo.short_sha(repo, sha, project.config.sha_length)
    return Trigger(ref=ref, sha=sha, short_sha=short, source=source, actor=actor or gitrepo.actor(),
                   source_url=gitrepo.source_url(repo))


def load_secrets(ctx: Context, plan: DeployPlan, names: tuple[str, ...] | None = None) -> dict[str, Secret]:
    """The named secrets (default: every one the plan needs), each added to the masker."""
    secrets = resolve_secrets(plan.secret_names if names is None else names, ctx.env, Path(plan.secrets_file),
                              ctx.report.warn)
    for s in secrets.values():
        ctx.masker.add(s)
    return secrets


def open_registry(plan: DeployPlan, secrets: Mapping[str, Secret]) -> Registry:
    reg = plan.registry
    return Registry(reg.url.split("/")[0], reg.username, secrets.get(reg.password_secret or ""))


def compile_for(ctx: Context, project: Project, trigger: Trigger, *, rebuild: bool = False,
                build_cache: str | None = None) -> Plan:
    """The plan for a commit with each image reused or built (`reuse.decide`): asks the engine its platform and
    the registry (HEAD requests) which build inputs it has; changes nothing. Without an engine or a registry
    that answers, every image is built and the plan says why."""
    dplan = deploy_plan(project)
    password: dict[str, Secret] = {}
    if dplan.registry.password_secret:
        try:
            password = load_secrets(ctx, dplan, (dplan.registry.password_secret,))
        except ShiplineError:
            password = {}  # a plan needs no secret: ask the registry anonymously
    try:
        platform = reuse.engine_platform(ctx.local)
        with open_registry(dplan, password) as registry:
            sources = reuse.decide(project, trigger, registry, platform, rebuild=rebuild)
        return replace(compile_plan(project, trigger, ctx.now(), sources, build_cache), platform=platform)
    except ShiplineError as exc:
        plan = compile_plan(project, trigger, ctx.now(), build_cache=build_cache)
        return replace(plan, notes=(*plan.notes, f"every image is built: {exc.message}"))


def report_sources(ctx: Context, plan: Plan, only: set[str] | None = None) -> None:
    for src in plan.sources:
        if only is None or src.service in only:
            ctx.report.info(f"{src.service}: {'not rebuilt, reused' if src.reuse else 'build'}: {src.reason}")


def checkout(ctx: Context, plan: Plan) -> Path:
    workspace = Path(tempfile.mkdtemp(prefix=f"shipline-{plan.app}-{plan.trigger.short_sha}-"))
    gitrepo.export(Path(plan.source.repo), plan.trigger.sha, workspace)
    ctx.report.info(f"{plan.trigger.sha} exported to {workspace}")
    return workspace


def build_images(ctx: Context, plan: Plan, workspace: Path, only: set[str] | None = None,
                 secrets: Mapping[str, Secret] | None = None) -> None:
    """All images at once: BuildKit builds each in its own process, so the slowest build sets the time.

    A build's secrets reach it through its process's environment (`--secret id=NAME,env=NAME`), never argv.
    """
    builds = [b for b in plan.builds if only is None or b.service in only]
    if not builds:
        return
    leaks = secrets_in_build_args(builds, secrets or {})
    if leaks:
        raise ConfigError(leaks)
    reuse.check_cache_builder(ctx.local, plan)
    sinks = {b.service: ctx.report.sink(f"build {b.service}") for b in builds}  # this thread's stage, not another's

    def one(step: BuildStep) -> tuple[str, float, str | None]:
        start = datetime.now(UTC)
        env = {**ctx.env, **{n: (secrets or {})[n].reveal() for n in step.secrets}}
        local = LocalExecutor(ctx.masker, env, cancel=ctx.cancel) if step.secrets else ctx.local
        res = local.run(step.argv, cwd=str(workspace), on_line=sinks[step.service])
        took = (datetime.now(UTC) - start).total_seconds()
        ctx.report.info(f"{step.service}: {'built ' + step.ref if res.ok else 'FAILED'} in {took:.1f}s")
        return step.service, took, None if res.ok else res.tail()

    with ThreadPoolExecutor(max_workers=len(builds)) as pool:
        results = list(pool.map(one, builds))
    failed = [(svc, tail) for svc, _, tail in results if tail is not None]
    if failed:
        svc, tail = failed[0]
        raise StepFailed(f"building {', '.join(s for s, _ in failed)} failed; nothing was pushed. {svc}:\n{tail}")


def run_tests(ctx: Context, plan: Plan, workspace: Path, only: set[str] | None = None) -> None:
    local = ctx.local
    for step in plan.tests:
        if only is not None and step.service not in only:
            continue
        run = uuid.uuid4().hex[:8]
        argv = [a.replace("{workspace}", str(workspace)).replace("{run}", run) for a in step.argv]
        ctx.report.info(f"test {step.name}")
        try:
            res = local.run(argv, on_line=ctx.report.sink(f"test {step.name}"))
        except BaseException:  # interrupted: `docker run --rm` removes it only when it ends
            local.run(dc.remove_container(step.container.replace("{run}", run)))
            raise
        if not res.ok:
            raise StepFailed(
                f"test step {step.name!r} failed with exit status {res.returncode}; nothing was pushed or deployed. "
                f"Last lines:\n{res.tail()}", res.returncode, res.output)


def registry_login(plan: DeployPlan, secrets: Mapping[str, Secret]) -> tuple[tuple[str, ...], Secret] | None:
    reg = plan.registry
    return (reg.login, secrets[reg.password_secret]) if reg.login and reg.password_secret else None


def publish(ctx: Context, plan: Plan, secrets: Mapping[str, Secret], only: set[str] | None = None) -> None:
    """Push the built images while the reused ones get this commit's tag in the registry; then tag the built
    ones with their inputs tag (by the digest this run pushed, which is what it tested)."""
    local = ctx.local
    login = registry_login(plan.deploy, secrets)
    if login:
        argv, password = login
        local.run(argv, stdin=password.reveal().encode(), on_line=ctx.report.sink("login")).check("registry login")
    service = {ref: svc for svc, ref in plan.images.items()}
    pushes = [p for p in plan.pushes if only is None or service[p[-1]] in only]
    sink = ctx.report.sink("push")
    with open_registry(plan.deploy, secrets) as registry, ThreadPoolExecutor(max_workers=1 + len(pushes)) as pool:
        reused = pool.submit(reuse.tag_reused, registry, plan, ctx.report, plan.platform, only)
        results = list(pool.map(lambda argv: local.run(argv, on_line=sink), pushes))
        reused.result()
        for res in results:
            res.check()
        pushed = {service[r.argv[-1]]: d for r in results if (d := reuse.pushed_digest(r.output))}
        reuse.tag_built(registry, plan, pushed, only)


def holder() -> str:
    """Who holds a lock, as a person reading `lock status` on the host wants to know it."""
    return f"{gitrepo.actor()} on {socket.gethostname()}"


def connect_all(ctx: Context, plan: DeployPlan) -> list[Executor]:
    """Every host at once; if one cannot be reached, the others are closed and nothing has been changed."""
    targets = list(enumerate(plan.targets))

    def one(item: tuple[int, HostTarget]) -> Executor | BaseException:
        try:
            return ctx.connect(*item)
        except BaseException as exc:  # every connection attempt ends before one error is raised
            return exc

    with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        results = list(pool.map(one, targets))
    errors = [r for r in results if isinstance(r, BaseException)]
    if not errors:
        return [r for r in results if not isinstance(r, BaseException)]
    for r in results:
        if not isinstance(r, BaseException):
            r.close()
    error = next((e for e in errors if isinstance(e, HostKeyError)), errors[0])  # a wrong host key first
    if isinstance(error, ShiplineError) and not isinstance(error, HostKeyError) and len(targets) > 1:
        raise type(error)(f"{error.message} Nothing was changed on any host: shipline reaches every host before "
                          "it changes one.") from None
    raise error


def connect_stage(ctx: Context, plan: DeployPlan) -> list[Executor]:
    with ctx.report.stage("connect", ", ".join(t.host.address for t in plan.targets)):
        return connect_all(ctx, plan)


def compile_connected(ctx: Context, project: Project, trigger: Trigger, *, rebuild: bool = False,
                      build_cache: str | None = None) -> tuple[Plan, list[Executor]]:
    """`compile_for` while every host is being connected: both wait mostly on the network (registry HEAD
    requests, SSH handshakes), and a deploy needs both before anything else. A wrong key still costs no build."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        connecting = pool.submit(connect_stage, ctx, deploy_plan(project))
        try:
            plan = compile_for(ctx, project, trigger, rebuild=rebuild, build_cache=build_cache)
        except BaseException:
            with suppress(BaseException):
                for ex in connecting.result():
                    ex.close()
            raise
        return plan, connecting.result()


@contextmanager
def connected(ctx: Context, plan: DeployPlan, executors: list[Executor] | None = None) -> Iterator[list[HostDeployer]]:
    """Every host connected (and its key checked) first, unless `compile_connected` did it: a wrong key costs no
    build. Closed however it ends."""
    opened = connect_stage(ctx, plan) if executors is None else executors  # connect_all closes its own on failure
    try:
        yield [HostDeployer(ex, t, plan, ctx.report, cancel=ctx.cancel, sleep=ctx.sleep)
               for ex, t in zip(opened, plan.targets, strict=False)]
    finally:
        for ex in opened:
            ex.close()


@contextmanager
def locked_hosts(ctx: Context, plan: DeployPlan, commit: str) -> Iterator[list[HostDeployer]]:
    """Every host connected, locked (timed as the `lock` stage) and its ledger read; unlocked and closed at the end."""
    with connected(ctx, plan) as hosts, holding_locks(ctx, hosts, commit):
        yield hosts


@contextmanager
def holding_locks(ctx: Context, hosts: list[HostDeployer], commit: str) -> Iterator[None]:
    """Every host locked and its ledger read (timed as the `lock` stage); unlocked at the end."""
    with ExitStack() as stack:
        with ctx.report.stage("lock", "every host's deploy lock and ledger"):
            stack.enter_context(locked(hosts, holder(), commit))
            for h in hosts:
                h.read_ledger()
        yield


def begin(ctx: Context, hosts: list[HostDeployer], start: Callable[[int], Record]) -> Record:
    """Under every host's lock: allocate the number from the ledgers, heal, record the release as running."""
    taken = [*(h.ledger for h in hosts)]
    number = max(ledger.next_number(taken), 1 + max((n for h in hosts for n in h.release_numbers()), default=0))
    for h in hosts:
        h.heal(number)
    record = start(number)
    for h in hosts:
        h.record(record)
    return record


@contextmanager
def recorded(ctx: Context, hosts: list[HostDeployer], record: Record) -> Iterator[set[str]]:
    """Whatever happens inside, each host's record ends consistent: succeeded, failed with why, or interrupted.

    The body adds the hosts that went live to the yielded set: with several hosts a failure on one leaves
    the others' records true to what they serve.
    """
    live: set[str] = set()

    def finish(status: str, reason: str = "") -> None:
        for h in hosts:
            own = ledger.SUCCEEDED if h.name in live else status
            try:
                h.record((h.pending or record).finished(own, ctx.report.durations, "" if own == ledger.SUCCEEDED else reason))
            except ShiplineError as exc:
                ctx.report.warn(f"{h.name}: could not record the release's end ({exc.message}); the next deploy will")

    try:
        yield live
    except KeyboardInterrupt as exc:
        finish(ledger.INTERRUPTED, describe(exc))
        raise
    except ConnectionLost as exc:
        finish(ledger.FAILED, exc.message)
        raise
    except ShiplineError as exc:
        finish(ledger.FAILED, exc.message)
        raise
    except Exception as exc:
        finish(ledger.FAILED, describe(exc))
        raise
    finish(ledger.SUCCEEDED)


def prune(ctx: Context, hosts: list[HostDeployer], plan: DeployPlan, live: int | None = None) -> None:
    """Under the locks: keep the newest successful releases (whoever made them), counting release `live` (which is
    serving, its record not yet written) among them, and any other still running; their files and images."""
    for h in hosts:
        records = hosts[0].ledger if plan.swarm else h.ledger  # a swarm's manager keeps the whole history
        counted = [replace(r, status=ledger.SUCCEEDED) if r.number == live else r for r in records]
        kept = [*ledger.kept(counted, plan.keep_releases), *(r for r in counted if r.status == ledger.RUNNING)]
        images = {ref for r in kept for ref in r.images.values()}
        try:
            h.prune({r.number for r in kept}, images)
        except ShiplineError as exc:
            ctx.report.warn(f"{h.name}: pruning failed ({exc.message}); the next deploy prunes again")


class LocalWork:
    """Checkout, build and test of the commit, in a thread of their own while the hosts are locked and the release
    staged on them: a deploy waits for the slower of the two, not for both.

    The test step waits until the hosts have said the commit is not already live; `stop` ends the work early
    (its running command killed) when the deploy has no use for it any more.
    """

    def __init__(self, ctx: Context, plan: Plan, secrets: Mapping[str, Secret], build: bool) -> None:
        self.cancel = ctx.cancel.child()
        self.ctx, self.plan, self.secrets, self.build = replace(ctx, cancel=self.cancel), plan, secrets, build
        self.workspace: Path | None = None
        self._checked_out = threading.Event()
        self._go = threading.Event()
        self._wanted = True
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local")
        self._done: Future[None] | None = None

    def start(self) -> None:
        self._done = self._pool.submit(self._run)

    def _run(self) -> None:
        ctx, plan = self.ctx, self.plan
        try:
            with ctx.report.stage("checkout", plan.trigger.sha):
                self.workspace = checkout(ctx, plan)
        finally:
            self._checked_out.set()
        if not self.build:
            return
        with ctx.report.stage("build", ", ".join(plan.images)):
            report_sources(ctx, plan)
            build_images(ctx, plan, workspace=self.workspace, secrets=self.secrets)
        while not self._go.wait(0.05):
            self.cancel.check()
        if self._wanted:
            with ctx.report.stage("test", f"{len(plan.tests)} step(s)"):
                run_tests(ctx, plan, self.workspace)

    def tests_may_run(self) -> None:
        self._go.set()

    def checked_out(self) -> Path:
        """The workspace, once the checkout is done; raises what stopped it."""
        self._checked_out.wait()
        if self.workspace is None:
            self.result()  # the checkout failed: this raises its error
        assert self.workspace is not None
        return self.workspace

    def result(self, check: Callable[[], None] = lambda: None) -> None:
        """Wait for the build and tests, calling `check` meanwhile (the hosts' locks: a connection that drops while
        the build runs stops the deploy then, not when the build is done); raise what failed."""
        assert self._done is not None
        while not wait((self._done,), timeout=0.2).done:
            check()
        self._done.result()

    def stop(self) -> None:
        """No longer needed (already live, or the deploy failed): kill what runs, wait, remove the workspace."""
        if self._done is not None and not self._done.done():
            self._wanted = False
            self._go.set()
            if self.build and self.plan.builds and not self._done.done():  # with nothing to build, it ends by itself
                self.cancel.request("the deploy no longer needs this build")
            with suppress(BaseException):  # its error, if any, is not the deploy's
                self._done.result()
        self._pool.shutdown(wait=True)
        if self.workspace:
            shutil.rmtree(self.workspace, ignore_errors=True)


def deploy(ctx: Context, plan: Plan, *, build: bool = True, executors: list[Executor] | None = None) -> int:
    """The whole pipeline for one commit. Returns the release number; raises on failure (recorded).

    Every host is connected (and its key checked) first, here or by `compile_connected` (whose `executors` this
    closes): a wrong key costs no build. Then the checkout, build and test run locally (`LocalWork`) while the
    hosts are locked, checked for "already live" and given the release's files; publishing waits for both.
    """
    report, t, dplan = ctx.report, plan.trigger, plan.deploy
    with connected(ctx, dplan, executors) as hosts, ExitStack() as stack:
        secrets = load_secrets(ctx, dplan)
        work = LocalWork(ctx, plan, secrets, build)
        work.start()
        stack.callback(work.stop)
        stack.enter_context(holding_locks(ctx, hosts, t.short_sha))
        live_already = None if dplan.swarm else already_live(plan, hosts, secrets)
        if live_already is not None:
            report.info(f"{t.short_sha} is already live (release {live_already.number}) on "
                        f"{', '.join(h.name for h in hosts)}: same commit, files and images, every service running; "
                        "nothing was built or restarted")
            return live_already.number
        work.tests_may_run()
        keepers = recording(dplan, hosts)
        record = begin(ctx, keepers, lambda n: Record(
            number=n, app=plan.app, sha=t.sha, short_sha=t.short_sha, ref=t.ref, source=t.source, actor=t.actor,
            status=ledger.RUNNING, started_at=ledger.now(), images=dict(plan.images),
            hosts=[h.target.host.address for h in hosts]))
        number = record.number
        report.info(f"release {number}: {plan.app} at {t.short_sha} ({t.ref})")
        with recorded(ctx, keepers, record) as live:
            workspace = work.checked_out()
            source = {path: (workspace / path).read_bytes() for path, _ in dplan.uploads}
            env_secrets = {k: v.reveal() for k, v in secrets.items() if k in dplan.secrets}
            meta = {"app": plan.app, "sha": t.sha, "short_sha": t.short_sha, "ref": t.ref, "source": t.source,
                    "actor": t.actor, "created": ctx.now().isoformat(timespec="seconds")}

            def put_files(h: HostDeployer) -> dict[str, str]:
                files = (swarm_deploy.release_files(dplan, number, plan.images, source, env_secrets, meta,
                                                    h.host.home()) if dplan.swarm else
                         render(dplan, h.target, number, plan.images, source, env_secrets, meta, h.host.home()))
                h.upload(files)
                return files.digests()

            if not dplan.swarm:
                fleet.Rollout(hosts, dplan, report, cancel=ctx.cancel, sleep=ctx.sleep).stage(record, put_files)
            work.result(lambda: fleet.check_locks(hosts))
            if build:
                with report.stage("publish", dplan.registry.url):
                    publish(ctx, plan, secrets)
            with report.stage("deploy", ", ".join(h.name for h in hosts)):
                finish(ctx, hosts, dplan, number, go_live(ctx, hosts, dplan, record, put_files, plan.images, secrets))
                live.update(h.name for h in keepers)
    report.info(f"release {number} ({t.short_sha}) is live; stages: "
                + ", ".join(f"{k} {v:.1f}s" for k, v in report.durations.items()))
    return number


def already_live(plan: Plan, hosts: list[HostDeployer], secrets: Mapping[str, Secret]) -> Record | None:
    """The live release, when it is this very commit with the same files and images on every host and every
    service runs: then a deploy has nothing to do. Read under the locks, before anything is built."""
    t, dplan = plan.trigger, plan.deploy
    lives = [h.live() for h in hosts]
    if not lives or any(r is None or r.sha != t.sha or r.images != plan.images for r in lives):
        return None
    source = {path: gitrepo.show(Path(plan.source.repo), t.sha, path) for path, _ in dplan.uploads}
    env_secrets = {k: v.reveal() for k, v in secrets.items() if k in dplan.secrets}
    for h, live in zip(hosts, lives, strict=True):
        assert live is not None
        files = render(dplan, h.target, live.number, plan.images, source, env_secrets, {}, h.host.home()).digests()
        if any(live.files.get(name) != digest for name, digest in files.items() if name not in PER_RELEASE):
            return None
        if not {s.service for s in h.target.rollout if s.strategy != "job"} <= h.running_services():
            return None
    numbers = {r.number for r in lives if r is not None}
    return lives[0] if len(numbers) == 1 else None


def go_live(ctx: Context, hosts: list[HostDeployer], plan: DeployPlan, record: Record, put_files: fleet.Prepare,
            images: dict[str, str], secrets: Mapping[str, Secret]) -> Callable[[], None]:
    """Prepare every host, switch them batch after batch (undone everywhere on any failure) until Docker agrees
    every new container is healthy; returns what retires the old ones (`finish` runs it). A swarm gets its
    release through the manager, which rolls the stack out on every node."""
    login = registry_login(plan, secrets)
    if plan.swarm:
        deploy = swarm_deploy.SwarmDeploy(hosts, plan, ctx.report, cancel=ctx.cancel, sleep=ctx.sleep)
        swarm_deploy.go_live(deploy, record, put_files(hosts[0]), images, login)
        return lambda: None  # retired by the manager already
    rollout = fleet.Rollout(hosts, plan, ctx.report, cancel=ctx.cancel, sleep=ctx.sleep)
    rollout.prepare(record, put_files, images, login)
    rollout.switch(record.number)
    return rollout.retire


def finish(ctx: Context, hosts: list[HostDeployer], plan: DeployPlan, number: int, retire: Callable[[], None]) -> None:
    """Release `number` is live: the old containers are drained and stopped while old releases are pruned (as if
    it had succeeded), before it is recorded as succeeded, so an interruption here leaves an unfinished record
    and the next deploy stops what was left."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        retiring = pool.submit(retire)
        prune(ctx, hosts, plan, live=number)
    retiring.result()


def recording(plan: DeployPlan, hosts: list[HostDeployer]) -> list[HostDeployer]:
    """The hosts whose ledgers record the release: every host, or a swarm's manager (`plan.ledger_targets`)."""
    return hosts[:len(plan.ledger_targets())]


def publish_only(ctx: Context, plan: Plan, only: set[str] | None) -> None:
    """Build, test and push without deploying (the build jobs of a CI workflow)."""
    secrets = load_secrets(ctx, plan.deploy)
    workspace = None
    try:
        with ctx.report.stage("checkout", plan.trigger.sha):
            workspace = checkout(ctx, plan)
        with ctx.report.stage("build", ", ".join(sorted(only or plan.images))):
            report_sources(ctx, plan, only)
            build_images(ctx, plan, workspace, only, secrets)
        with ctx.report.stage("test"):
            run_tests(ctx, plan, workspace, only)
        with ctx.report.stage("publish", plan.deploy.registry.url):
            publish(ctx, plan, secrets, only)
    finally:
        if workspace:
            shutil.rmtree(workspace, ignore_errors=True)


def choose_rollback(history: list[ledger.Merged], target: int | None) -> ledger.Merged:
    """The release to go back to: the one named, or the newest successful one before the live one (another commit)."""
    good = [m for m in history if m.status == ledger.SUCCEEDED]
    if not good:
        raise NotFound("there is no successful release to roll back to; deploy first.")
    if target is None:
        chosen = next((m for m in good[1:] if m.record.sha != good[0].record.sha), None)
        if chosen is None:
            raise NotFound(f"release {good[0].record.number} is the only successful release; there is nothing to roll back to.")
        return chosen
    found = next((m for m in history if m.record.number == target), None)
    if found is None or found.status != ledger.SUCCEEDED:
        raise NotFound(f"release {target} {'does not exist' if found is None else 'did not succeed'}; "
                       "`shipline releases` lists the ones you can roll back to.")
    return found


def rollback(ctx: Context, plan: DeployPlan, target: int | None) -> int:
    """Redeploy an earlier successful release's files and images, as a new release recorded on every host."""
    secrets = load_secrets(ctx, plan)
    report = ctx.report
    actor = gitrepo.actor()
    with locked_hosts(ctx, plan, "rollback") as hosts:
        keepers = recording(plan, hosts)
        chosen = choose_rollback(ledger.merge({h.name: h.ledger for h in keepers}), target).record
        missing = [h.name for h in keepers if not h.has_release(chosen.number)]
        if missing:
            raise NotFound(f"release {chosen.number}'s files are no longer on {', '.join(missing)} (pruned); "
                           f"deploy its commit again with `shipline deploy --ref {chosen.sha}` instead.")
        record = begin(ctx, keepers, lambda n: replace(
            chosen, number=n, source=f"rollback to {chosen.number}", actor=actor, status=ledger.RUNNING,
            started_at=ledger.now(), finished_at=None, reason="", stages={}, rollback_of=chosen.number,
            hosts=[h.target.host.address for h in hosts]))
        what = f"release {chosen.number} ({chosen.short_sha}) as release {record.number}"
        with recorded(ctx, keepers, record) as live, report.stage("deploy", what):
            meta = {"app": plan.app, "sha": chosen.sha, "short_sha": chosen.short_sha, "ref": chosen.ref,
                    "source": record.source, "actor": actor, "created": ctx.now().isoformat(timespec="seconds")}
            def put_files(h: HostDeployer) -> dict[str, str]:
                own = (swarm_deploy.rollback_files(h, chosen.number, record.number, chosen.images, meta) if plan.swarm
                       else own_files(plan, h.target, record.number, chosen.images, meta))
                h.copy_release(chosen.number, record.number, own)
                return {**chosen.files, **{k: b.digest for k, b in own.items()}}

            finish(ctx, hosts, plan, record.number, go_live(ctx, hosts, plan, record, put_files, chosen.images, secrets))
            live.update(h.name for h in keepers)
    return record.number
