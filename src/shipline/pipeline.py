"""The pipeline: checkout -> build -> test -> publish -> deploy, each stage timed and recorded.

Wires the pure plan to executors; holds no logic of its own beyond order and bookkeeping.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from . import docker_commands as dc
from . import gitrepo, reuse
from .config import Host, Project
from .deployer import DeploySettings, HostDeployer, ReleaseFiles
from .errors import NotFound, ShiplineError, StepFailed
from .executors.base import Executor
from .executors.local import LocalExecutor
from .history import FAILED, SUCCEEDED, History, Release
from .plan import BuildStep, Plan, Trigger, compile_plan, env_file
from .registry import Registry
from .reporter import Reporter
from .secrets import Masker, Secret, resolve_secrets

Connect = Callable[[int, Host], Executor]


@dataclass
class Context:
    """Everything a pipeline run needs from the outside world, passed explicitly (no globals)."""

    project: Project
    env: Mapping[str, str]
    report: Reporter
    history: History
    connect: Connect
    masker: Masker = field(default_factory=Masker)
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    @property
    def local(self) -> LocalExecutor:
        return LocalExecutor(self.masker)


def make_trigger(ctx: Context, ref: str | None, source: str = "cli", actor: str | None = None) -> Trigger:
    repo = ctx.project.repo_root
    ref = ref or gitrepo.default_ref(repo, ctx.project.config.branch)
    sha = gitrepo.resolve(repo, ref)
    short = gitrepo.short_sha(repo, sha, ctx.project.config.sha_length)
    return Trigger(ref=ref, sha=sha, short_sha=short, source=source, actor=actor or gitrepo.actor(),
                   source_url=gitrepo.source_url(repo))


def load_secrets(ctx: Context, names: list[str] | None = None) -> dict[str, Secret]:
    """The named secrets (default: the app's and the registry password), each added to the masker."""
    cfg = ctx.project.config
    if names is None:
        names = list(cfg.secrets) + ([cfg.registry.password_secret] if cfg.registry.password_secret else [])
    secrets = resolve_secrets(names, ctx.env, ctx.project.root / cfg.secrets_file)
    for s in secrets.values():
        ctx.masker.add(s)
    return secrets


def checkout(ctx: Context, trigger: Trigger) -> Path:
    workspace = Path(tempfile.mkdtemp(prefix=f"shipline-{ctx.project.config.app}-{trigger.short_sha}-"))
    gitrepo.export(ctx.project.repo_root, trigger.sha, workspace)
    ctx.report.info(f"{trigger.sha} exported to {workspace}")
    return workspace


def registry_for(ctx: Context, secrets: Mapping[str, Secret]) -> Registry:
    secret = ctx.project.config.registry.password_secret
    return reuse.open_registry(ctx.project, secrets.get(secret) if secret else None)


def choose_images(ctx: Context, trigger: Trigger, created: datetime, registry: Registry, *,
                  rebuild: bool = False, build_cache: str | None = None) -> tuple[Plan, str]:
    """The plan with each image reused or built (`reuse.decide`), and the platform images are built for."""
    platform = reuse.engine_platform(ctx.local)
    sources = reuse.decide(ctx.project, trigger, registry, platform, rebuild=rebuild)
    return compile_plan(ctx.project, trigger, created, sources, build_cache), platform


def report_sources(ctx: Context, plan: Plan, only: set[str] | None = None) -> None:
    for src in plan.sources:
        if only is None or src.service in only:
            ctx.report.info(f"{src.service}: {'not rebuilt, reused' if src.reuse else 'build'}: {src.reason}")


def preview(ctx: Context, trigger: Trigger, *, rebuild: bool = False, build_cache: str | None = None) -> Plan:
    """What `deploy` would do, for `shipline plan`: reads git, asks the engine its platform and the registry
    (HEAD requests) which images it has; changes nothing. Without an engine or registry, every image is built."""
    cfg = ctx.project.config
    password = None
    if cfg.registry.password_secret:
        try:
            password = load_secrets(ctx, [cfg.registry.password_secret])[cfg.registry.password_secret]
        except ShiplineError:
            password = None  # a plan needs no secret: try the registry anonymously
    try:
        with reuse.open_registry(ctx.project, password) as registry:
            return choose_images(ctx, trigger, ctx.now(), registry, rebuild=rebuild, build_cache=build_cache)[0]
    except ShiplineError as exc:
        plan = compile_plan(ctx.project, trigger, ctx.now(), build_cache=build_cache)
        return replace(plan, notes=(*plan.notes, f"every image is built: {exc.message}"))


def build_images(ctx: Context, plan: Plan, workspace: Path, only: set[str] | None = None) -> None:
    """All images at once: BuildKit builds each in its own process, so the slowest build sets the time."""
    builds = [b for b in plan.builds if only is None or b.service in only]
    if not builds:
        return
    local = ctx.local
    reuse.check_cache_builder(local, plan)

    def one(step: BuildStep) -> tuple[str, float, str | None]:
        start = datetime.now(UTC)
        res = local.run(step.argv, cwd=str(workspace), on_line=ctx.report.sink(f"build {step.service}"))
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
        finally:
            local.run(dc.remove_container(step.container.replace("{run}", run)))  # gone already unless interrupted
        if not res.ok:
            raise StepFailed(
                f"test step {step.name!r} failed with exit status {res.returncode}; nothing was pushed or deployed. "
                f"Last lines:\n{res.tail()}", res.returncode, res.output)


def publish(ctx: Context, plan: Plan, secrets: Mapping[str, Secret], only: set[str] | None = None) -> dict[str, str]:
    """Push the built images; returns service -> the pushed manifest's digest (what this run tested)."""
    local = ctx.local
    cfg = ctx.project.config
    if plan.registry_login and cfg.registry.password_secret:
        password = secrets[cfg.registry.password_secret]
        local.run(plan.registry_login, stdin=password.reveal().encode(), on_line=ctx.report.sink("login")).check("registry login")
    service = {ref: svc for svc, ref in plan.images.items()}
    pushes = [p for p in plan.pushes if only is None or service[p[-1]] in only]
    with ThreadPoolExecutor(max_workers=max(1, len(pushes))) as pool:
        results = list(pool.map(lambda argv: local.run(argv, on_line=ctx.report.sink("push")), pushes))
    for res in results:
        res.check()
    return {service[r.argv[-1]]: d for r in results if (d := reuse.pushed_digest(r.output))}


def kept_releases(history: History, files: ReleaseFiles, keep: int) -> tuple[list[int], set[str]]:
    """This release plus the newest successful ones before it, up to `keep` in all, and their images."""
    earlier = [r for r in history.succeeded(keep) if r.number != files.number][: keep - 1]
    images = set(files.images.values()).union(*(r.images.values() for r in earlier))
    return [files.number, *(r.number for r in earlier)], images


def connect_all(ctx: Context) -> list[Executor]:
    """Reach every host (and check its pinned key) before building anything: a wrong key costs no build."""
    executors: list[Executor] = []
    try:
        for index, host in enumerate(ctx.project.config.hosts):
            executors.append(ctx.connect(index, host))
    except BaseException:
        close_all(executors)
        raise
    return executors


def close_all(executors: list[Executor]) -> None:
    for ex in executors:
        ex.close()


def deploy_hosts(ctx: Context, plan: Plan, executors: list[Executor], files: ReleaseFiles, previous: int | None,
                 secrets: Mapping[str, Secret], copy_from: int | None = None) -> None:
    cfg = ctx.project.config
    kept, images = kept_releases(ctx.history, files, cfg.deploy.keep_releases)
    login = None
    if plan.registry_login and cfg.registry.password_secret:
        login = (plan.registry_login, secrets[cfg.registry.password_secret])
    settings = DeploySettings(cfg.deploy.lock_ttl, cfg.deploy.lock_wait, kept, images, login)
    for ex, target in zip(executors, plan.deploys, strict=True):
        HostDeployer(ex, target, cfg.app, ctx.report, cfg.proxy).deploy(files, previous, settings, copy_from=copy_from)


@contextmanager
def recorded(ctx: Context, number: int) -> Iterator[None]:
    """Whatever happens inside, the release's record ends consistent: succeeded, failed with why, or interrupted."""
    try:
        yield
    except ShiplineError as exc:
        ctx.history.finish(number, FAILED, ctx.report.durations, exc.message)
        raise
    except KeyboardInterrupt:
        ctx.history.finish(number, FAILED, ctx.report.durations, "interrupted")
        raise
    ctx.history.finish(number, SUCCEEDED, ctx.report.durations)


@contextmanager
def connected(ctx: Context) -> Iterator[list[Executor]]:
    """Every host connected (and its key checked) first; connections closed however the run ends."""
    with ctx.report.stage("connect", ", ".join(h.address for h in ctx.project.config.hosts)):
        executors = connect_all(ctx)
    try:
        yield executors
    finally:
        close_all(executors)


def release_files(ctx: Context, plan: Plan, number: int, compose: bytes, secrets: Mapping[str, Secret]) -> ReleaseFiles:
    cfg = ctx.project.config
    t = plan.trigger
    env = env_file(cfg.app, number, plan.images, dict(cfg.env), {k: v.reveal() for k, v in secrets.items()
                                                                  if k in cfg.secrets})
    meta: dict[str, object] = {"number": number, "app": cfg.app, "sha": t.sha, "short_sha": t.short_sha, "ref": t.ref,
                               "images": plan.images, "source": t.source, "actor": t.actor,
                               "created": ctx.now().isoformat(timespec="seconds")}
    return ReleaseFiles(number, compose, plan.images, env.encode(), meta)


def deploy(ctx: Context, trigger: Trigger, *, build: bool = True, rebuild: bool = False,
           build_cache: str | None = None) -> int:
    """The whole pipeline for one commit. Returns the release number; raises on failure (recorded)."""
    secrets = load_secrets(ctx)
    cfg = ctx.project.config
    created = ctx.now()
    plan = compile_plan(ctx.project, trigger, created)
    previous = ctx.history.current()
    number = ctx.history.start(app=cfg.app, sha=trigger.sha, short_sha=trigger.short_sha, ref=trigger.ref,
                               source=trigger.source, actor=trigger.actor, images=plan.images,
                               hosts=[h.address for h in cfg.hosts])
    report = ctx.report
    report.info(f"release {number}: {cfg.app} at {trigger.short_sha} ({trigger.ref})")
    workspace: Path | None = None
    try:
        with recorded(ctx, number), connected(ctx) as executors, registry_for(ctx, secrets) as registry:
            with report.stage("checkout", trigger.sha):
                workspace = checkout(ctx, trigger)
            if build:
                with report.stage("build", ", ".join(plan.images)):
                    plan, platform = choose_images(ctx, trigger, created, registry, rebuild=rebuild,
                                                   build_cache=build_cache)
                    report_sources(ctx, plan)
                    build_images(ctx, plan, workspace)
                with report.stage("test", f"{len(plan.tests)} step(s)"):
                    run_tests(ctx, plan, workspace)
                with report.stage("publish", cfg.registry.url):
                    pushed = publish(ctx, plan, secrets)
                    reuse.tag_images(registry, plan, report, platform, pushed)
            compose = (workspace / ctx.project.root_in_repo / cfg.compose).read_bytes()
            files = release_files(ctx, plan, number, compose, secrets)
            with report.stage("deploy", ", ".join(h.address for h in cfg.hosts)):
                deploy_hosts(ctx, plan, executors, files, previous.number if previous else None, secrets)
    finally:
        if workspace:
            shutil.rmtree(workspace, ignore_errors=True)
    report.info(f"release {number} ({trigger.short_sha}) is live; stages: "
                + ", ".join(f"{k} {v:.1f}s" for k, v in report.durations.items()))
    return number


def publish_only(ctx: Context, trigger: Trigger, only: set[str] | None, *, rebuild: bool = False,
                 build_cache: str | None = None) -> None:
    """Build, test and push without deploying (the build jobs of a CI workflow)."""
    secrets = load_secrets(ctx)
    workspace = None
    try:
        with registry_for(ctx, secrets) as registry:
            with ctx.report.stage("checkout", trigger.sha):
                workspace = checkout(ctx, trigger)
            with ctx.report.stage("build", ", ".join(sorted(only or ctx.project.config.build))):
                plan, platform = choose_images(ctx, trigger, ctx.now(), registry, rebuild=rebuild,
                                               build_cache=build_cache)
                report_sources(ctx, plan, only)
                build_images(ctx, plan, workspace, only)
            with ctx.report.stage("test"):
                run_tests(ctx, plan, workspace, only)
            with ctx.report.stage("publish", ctx.project.config.registry.url):
                pushed = publish(ctx, plan, secrets, only)
                reuse.tag_images(registry, plan, ctx.report, platform, pushed, only)
    finally:
        if workspace:
            shutil.rmtree(workspace, ignore_errors=True)


def rollback(ctx: Context, target: int | None) -> int:
    """Redeploy an earlier successful release's files and images; recorded as a new release."""
    secrets = load_secrets(ctx)
    cfg = ctx.project.config
    good = ctx.history.succeeded()
    if not good:
        raise NotFound("there is no successful release to roll back from; deploy first.")
    current = good[0]
    chosen: Release | None
    if target is None:
        chosen = next((r for r in good[1:] if r.sha != current.sha), None)
        if chosen is None:
            raise NotFound(f"release {current.number} is the only successful release; there is nothing to roll back to.")
    else:
        chosen = ctx.history.get(target)
        if chosen is None or chosen.status != SUCCEEDED:
            raise NotFound(f"release {target} {'does not exist' if chosen is None else 'did not succeed'}; "
                           "`shipline releases` lists the ones you can roll back to.")
    trigger = Trigger(ref=chosen.ref, sha=chosen.sha, short_sha=chosen.short_sha, source=f"rollback to {chosen.number}",
                      actor=gitrepo.actor())
    plan = compile_plan(ctx.project, trigger, ctx.now())
    plan = Plan(plan.app, trigger, dict(chosen.images), (), (), (), plan.deploys, plan.keep_releases, plan.registry_login)
    number = ctx.history.start(app=cfg.app, sha=chosen.sha, short_sha=chosen.short_sha, ref=chosen.ref,
                               source=trigger.source, actor=trigger.actor, images=chosen.images,
                               hosts=[h.address for h in cfg.hosts], rollback_of=chosen.number)
    files = ReleaseFiles(number, b"", dict(chosen.images), b"", {"actor": trigger.actor, "short_sha": chosen.short_sha})
    what = f"release {chosen.number} ({chosen.short_sha}) as release {number}"
    with recorded(ctx, number), connected(ctx) as executors, ctx.report.stage("deploy", what):
        deploy_hosts(ctx, plan, executors, files, current.number, secrets, copy_from=chosen.number)
    return number
