"""A deploy as data: configuration + trigger compile into stages of steps, printed by `shipline plan`.

Nothing here touches Docker, git or the network, so every decision the pipeline makes up front is tested as
plain data. The plan is also the only thing the pipeline and the deployer read at run time: every setting
they need (registry login, proxy, lock, retention, secret names) travels in it.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from . import docker_commands as dc
from .compose import DataDir
from .config import Host, Proxy
from .hostkeys import pin_fingerprint
from .inputs import INPUTS_LABEL
from .layout import ENV_FILE, LEGACY_CALL, OVERRIDE_FILE, SOURCE_DIR, ComposeCall, HostLayout
from .project import Project, resolve_key_path
from .schedule import waves
from .secrets import Secret
from .swarm_plan import SwarmPlan
from .swarm_plan import describe as describe_swarm
from .swarm_stack import ignored_keys
from .traefik_labels import LabelRouting

OCI = "org.opencontainers.image"
SIDE_BY_SIDE = ("zero-downtime", "start-first")


@dataclass(frozen=True)
class Trigger:
    """What asked for this deploy: the commit and who or what pushed it."""

    ref: str
    sha: str
    short_sha: str
    source: str = "cli"
    actor: str = ""
    source_url: str = ""


@dataclass(frozen=True)
class Source:
    """Where the commit comes from: the repository on this machine and where shipline.yml sits in it."""

    repo: str  # the git work tree
    subdir: str  # of shipline.yml inside the repository ("" at its root)


@dataclass(frozen=True)
class BuildStep:
    service: str
    ref: str
    argv: tuple[str, ...]  # paths relative to the checkout
    secrets: tuple[str, ...] = ()  # names the build reads from its environment (`--secret id=NAME,env=NAME`)


@dataclass(frozen=True)
class ImageSource:
    """How a built service gets its image for this commit: built here, or an earlier image with the same
    build inputs (`inputs.py`), given this commit's tag in the registry."""

    service: str
    reuse: bool
    inputs: str = ""  # the build-inputs digest; "" when not hashed
    reason: str = ""

    @property
    def inputs_tag(self) -> str:
        return f"inputs-{self.inputs}" if self.inputs else ""


def image_sources(inputs: Mapping[str, str], found: Mapping[str, bool | str], *, rebuild: bool = False) -> dict[str, ImageSource]:
    """Reuse or build, per service, with the reason the plan prints.

    `inputs`: service -> inputs digest. `found`: service -> whether the registry has `inputs-<digest>`, or why
    it could not say (then the service is built).
    """
    sources = {}
    for svc, digest in inputs.items():
        answer = found.get(svc, False)
        if rebuild:
            why, reuse = "--rebuild", False
        elif answer is True:
            why, reuse = f"an image with the same build inputs is in the registry (inputs-{digest[:12]})", True
        elif answer is False:
            why, reuse = f"no image with these build inputs in the registry (inputs-{digest[:12]})", False
        else:
            why, reuse = f"the registry could not say whether it has these build inputs ({answer})", False
        sources[svc] = ImageSource(svc, reuse, digest, why)
    return sources


@dataclass(frozen=True)
class TestStepPlan:
    name: str
    argv: tuple[str, ...]  # `{workspace}` stands for the checkout's path, `{run}` for this run's id
    container: str
    service: str | None = None  # the built service whose image it runs in


@dataclass(frozen=True)
class ServiceRollout:
    service: str
    built: bool
    health_timeout: float
    migrate_before: tuple[str, ...] | None = None  # `docker compose` arguments (a `run`) when migrations run first
    strategy: str = "recreate"
    port: int | None = None  # the container port the proxy routes to, for routed services
    drain: float = 0
    stop_timeout: int = 30
    why: str = ""  # why this strategy, in the user's terms
    after: tuple[str, ...] = ()  # the services it depends on (Compose's depends_on): it rolls out after them

    @property
    def side_by_side(self) -> bool:
        """New containers start next to the old ones (and carry the release label that says which is which)."""
        return self.strategy in SIDE_BY_SIDE


@dataclass(frozen=True)
class HostTarget:
    host: Host
    key_path: str | None
    layout: HostLayout
    rollout: tuple[ServiceRollout, ...]


@dataclass(frozen=True)
class RegistryAccess:
    url: str
    login: tuple[str, ...] | None = None  # `docker login` argv; the password goes to its stdin
    password_secret: str | None = None
    username: str | None = None


@dataclass(frozen=True)
class DeployPlan:
    """Everything needed to deploy to, roll back on, or inspect the hosts."""

    app: str
    targets: tuple[HostTarget, ...]
    registry: RegistryAccess
    proxy: Proxy | LabelRouting | None  # explicit routes (shipline.yml), or Traefik's labels taken over
    env: dict[str, str]  # plain values of the env file
    secrets: tuple[str, ...]  # names whose values go into the env file (mode 0600)
    secrets_file: str  # where secrets come from when not in the environment
    keep_releases: int
    lock_wait: float
    lock_ttl: float
    compose: ComposeCall = LEGACY_CALL  # how `docker compose` runs this release (paths in the release directory)
    uploads: tuple[tuple[str, int], ...] = ()  # repository files the release needs on the hosts, with their modes
    data_dirs: tuple[DataDir, ...] = ()  # relative bind mounts that are not in the commit: pointed at data/
    not_deployed: tuple[tuple[str, str], ...] = ()  # (service, why)
    profiles: tuple[str, ...] = ()  # Compose profiles enabled (COMPOSE_PROFILES in the env file)
    batches: tuple[tuple[int, ...], ...] = ((0,),)  # indexes into `targets`, switched one batch after another
    batch_wait: float = 0
    build_secrets: tuple[str, ...] = ()  # names the builds read (`build.<svc>.secrets`), never uploaded
    swarm: SwarmPlan | None = None  # deploy.mode: swarm: one stack through the first host (a manager)

    @property
    def migration_host(self) -> int | None:
        """The one host that runs migrations: the first that runs the migrated service."""
        return next((i for i, t in enumerate(self.targets) if any(r.migrate_before for r in t.rollout)), None)

    def describe_batches(self) -> str:
        names = [t.host.address for t in self.targets]
        parts = [f"batch {n} ({'canary' if n == 1 else 'then'}): {', '.join(names[i] for i in b)}"
                 for n, b in enumerate(self.batches, start=1)]
        return "; ".join(parts)

    def ledger_targets(self) -> tuple[HostTarget, ...]:
        """The hosts whose ledgers record releases: every host, or a swarm's manager only."""
        return self.targets[:1] if self.swarm else self.targets

    @property
    def secret_names(self) -> tuple[str, ...]:
        """Every secret a run needs: the env file's, the registry password, the builds'."""
        pw = self.registry.password_secret
        return tuple(dict.fromkeys((*self.secrets, *((pw,) if pw else ()), *self.build_secrets)))


@dataclass(frozen=True)
class Plan:
    app: str
    trigger: Trigger
    source: Source
    images: dict[str, str]  # service -> image ref
    builds: tuple[BuildStep, ...]
    tests: tuple[TestStepPlan, ...]
    pushes: tuple[tuple[str, ...], ...]
    deploy: DeployPlan
    notes: tuple[str, ...] = field(default=())
    sources: tuple[ImageSource, ...] = ()  # one per built service: reuse or build, and why
    build_cache: str = "off"  # registry | inline | off (config.BuildCache)
    cache_refs: dict[str, str] = field(default_factory=dict)  # service -> the registry cache's image ref
    platform: str = ""  # what the local engine builds for (an input of every image); "" when it was not asked

    @property
    def reused(self) -> tuple[ImageSource, ...]:
        return tuple(s for s in self.sources if s.reuse)

    def render(self) -> str:
        """Human-readable plan: every stage, every step, every command that will run."""
        t = self.trigger
        d = self.deploy
        lines = [f"app {self.app}: deploy {t.short_sha} ({t.ref}, {t.sha}) triggered by {t.source}{' as ' + t.actor if t.actor else ''}", ""]
        lines.append(f"0. lock       every host's deploy lock (wait up to {d.lock_wait:g}s); the release number is "
                     "allocated from the hosts' ledgers; leftovers of interrupted deploys are repaired")
        lines.append("1. checkout   clean copy of the commit (git archive) into a temporary workspace")
        lines.append("2. build      in parallel:")
        reasons = {s.service: s.reason for s in self.sources}
        for b in self.builds:
            lines += [f"     {b.service}: build: {reasons[b.service]}" if b.service in reasons else f"     {b.service}:",
                      f"       {' '.join(b.argv)}"]
        for s in self.reused:
            lines.append(f"     {s.service}: reuse: {s.reason}; tagged {self.images[s.service]} in the registry, "
                         "no build, no upload")
        if not self.builds and not self.reused:
            lines.append("     (nothing to build)")
        if self.builds and self.build_cache != "off":
            how = ("every stage's layers (needs a docker-container builder)" if self.build_cache == "registry"
                   else "inside each pushed image")
            lines.append(f"     build cache: {self.build_cache}, {how}, from and to "
                         + ", ".join(self.cache_refs[b.service] for b in self.builds))
        lines.append("3. test       in order, stop at the first failure:")
        lines += [f"     {s.name}: {' '.join(s.argv)}" for s in self.tests] or ["     (no test steps)"]
        lines.append("4. publish    push:")
        if d.registry.login:
            lines.append(f"     {' '.join(d.registry.login)}  (password on stdin)")
        lines += [f"     {' '.join(p)}" for p in self.pushes] or ["     (nothing to push)"]
        lines += [f"     tag {self.images[s.service].rsplit(':', 1)[0]}:{s.inputs_tag} in the registry (marks these "
                  "build inputs as built and tested)" for s in self.sources if not s.reuse and s.inputs]
        if self.build_cache == "inline":
            lines += [f"     tag {self.cache_refs[b.service]} in the registry (the next build's cache)" for b in self.builds]
        if d.swarm:
            lines += describe_swarm(d.swarm, [t.host.address for t in d.targets], d.targets[0].layout.app_dir,
                                    self.images, d.keep_releases, ignored_keys(d.swarm))
        else:
            lines.append("5. deploy     on each host, under its deploy lock:")
        if len(d.targets) > 1 and not d.swarm:
            lines.append("   every host is prepared in parallel (upload, pull); then the hosts switch in batches, each "
                         "batch behind a health barrier" + (f" and {d.batch_wait:g}s of watching" if d.batch_wait else "")
                         + f": {d.describe_batches()}. A failure anywhere switches every host back; old containers "
                         "are retired once every batch is live.")
        for index, target in enumerate(d.targets if not d.swarm else ()):
            host = target.host
            pins = " or ".join(pin_fingerprint(p) for p in host.pins)
            pin = f"host key {pins}" if pins else "host key NOT PINNED: deploy will refuse"
            lines.append(f"   {host.address} ({pin}) into ~/{target.layout.app_dir}")
            lines.append("     upload override with image tags, env file (mode 0600), and from the commit:")
            lines += [f"       {path} (mode {mode:04o})" for path, mode in d.uploads]
            lines += [f"     data: {m.key} -> ~/{target.layout.data_path(m.path)} (kept across releases)"
                      for m in d.data_dirs]
            if isinstance(d.proxy, LabelRouting):
                lines.append(f"     proxy: {d.proxy.service} reads the Traefik labels of "
                             f"{', '.join(d.proxy.routes) or 'no service'} from shipline's files, switched explicitly "
                             "(its command gains the file provider and the API; those containers get traefik.enable=false)")
                lines += [f"     proxy: {svc} keeps the docker provider: {why}" for svc, why in d.proxy.kept.items()]
            lines += [f"     pull {ref} (unless the host has it)" for ref in self.images.values()]
            lines.append("     compare each service with the live release (image ID, `docker compose config` of it, the "
                         "files it mounts): an unchanged one keeps its container")
            reused = {s.service for s in self.reused}
            steps = {r.service: r for r in target.rollout}
            migrated = next((r.service for r in target.rollout if r.migrate_before), None)
            for n, wave in enumerate(waves(list(steps), {s: r.after for s, r in steps.items()}, d.proxy.service if d.proxy else None, migrated), 1):
                together = " (together: none depends on another)" if len(wave) > 1 else ""
                lines.append(f"     wave {n}{together}:")
                for svc in wave:
                    r = steps[svc]
                    if r.migrate_before and index == d.migration_host:
                        once = " (once, on this host only)" if len(d.targets) > 1 else ""
                        lines.append(f"       migrate first{once}: docker compose {' '.join(r.migrate_before)}")
                    same = " Its image is reused: unchanged unless its definition or files changed." if svc in reused else ""
                    lines.append(f"       {svc}: {describe_rollout(r)}.{same}")
                    if r.why:
                        lines.append(f"         why: {r.why}")
            lines += [f"     {svc}: not deployed: {why}" for svc, why in d.not_deployed]
            lines.append(f"     record the release in ~/{target.layout.ledger}; prune images and files older than "
                         f"the last {d.keep_releases} successful releases")
        lines += ["", *self.notes] if self.notes else []
        return "\n".join(lines)


def secrets_in_build_args(builds: Sequence[BuildStep], secrets: Mapping[str, Secret]) -> list[str]:
    """Build args that hold a secret's value: it would stay in the image's history for anyone who pulls it."""
    problems = []
    for step in builds:
        args = [step.argv[i + 1] for i, a in enumerate(step.argv) if a == "--build-arg"]
        for arg in args:
            name, _, value = arg.partition("=")
            for secret in secrets.values():
                if secret.reveal() in value:
                    problems.append(
                        f"build.{step.service}.args.{name}: holds the value of the secret {secret.name}, which would "
                        f"stay in the image's history (`docker history`) for anyone who can pull it. Pass it as a build "
                        f"secret instead: `build.{step.service}.secrets: [{secret.name}]`, and read it in the Dockerfile "
                        f"with `RUN --mount=type=secret,id={secret.name} ...` (the file /run/secrets/{secret.name}).")
    return problems


def expand(value: str, trigger: Trigger, app: str) -> str:
    values = {"sha": trigger.sha, "short_sha": trigger.short_sha, "ref": trigger.ref, "app": app}
    return re.sub(r"\{(sha|short_sha|ref|app)\}", lambda m: values[m.group(1)], value)


def oci_labels(service: str, trigger: Trigger, created: datetime, inputs: str = "") -> dict[str, str]:
    """The labels of an image built from `trigger`'s commit; a later commit reusing it leaves them as they are,
    so `revision` always names the commit the image was built from."""
    return {
        f"{OCI}.revision": trigger.sha,
        f"{OCI}.source": trigger.source_url,
        f"{OCI}.created": created.isoformat(timespec="seconds"),
        f"{OCI}.title": service,
        f"{OCI}.version": trigger.short_sha,
        **({INPUTS_LABEL: inputs} if inputs else {}),
    }


def test_container_name(app: str, step: str, short_sha: str) -> str:
    """Named, so an interrupted run can remove it; `{run}` keeps two runs of one commit apart."""
    return f"shipline-{app}-test-{step}-{short_sha}-{{run}}"


def compile_plan(project: Project, trigger: Trigger, created: datetime,
                 sources: Mapping[str, ImageSource] | None = None, build_cache: str | None = None) -> Plan:
    """The plan for one commit. `sources` says which images are reused (`image_sources`); without it,
    every image is built. `build_cache` overrides shipline.yml's `build_cache.type`."""
    cfg = project.config
    subdir = project.root_in_repo
    sources = sources or {}
    images = {svc: f"{cfg.image_name(svc)}:{trigger.short_sha}" for svc in cfg.build}
    cache_type = build_cache or cfg.build_cache.type
    cache_refs = {svc: f"{cfg.image_name(svc)}:{cfg.build_cache.tag}" for svc in cfg.build} if cache_type != "off" else {}
    reused = {svc for svc, src in sources.items() if src.reuse}
    builds = []
    for svc, spec in cfg.build.items():
        if svc in reused:
            continue
        context = f"{subdir}/{spec.context}".strip("/") if subdir else spec.context
        argv = dc.build(
            images[svc],
            context or ".",
            dockerfile=f"{context or '.'}/{spec.dockerfile}" if spec.dockerfile else None,
            target=spec.target,
            args={k: expand(v, trigger, cfg.app) for k, v in spec.args.items()},
            labels=oci_labels(svc, trigger, created, sources[svc].inputs if svc in sources else ""),
            cache=(cache_type, cache_refs[svc]) if cache_refs else None,
            secrets=spec.secrets,
        )
        builds.append(BuildStep(svc, images[svc], tuple(argv), tuple(spec.secrets)))
    tests = []
    for step in cfg.test:
        if step.service in reused:
            continue  # its image passed this very step when it was built (the steps are among its inputs)
        container = test_container_name(cfg.app, step.name, trigger.short_sha)
        command = dc.shell_command(step.run)
        if step.service:
            argv = dc.run(images[step.service], command, name=container, env=step.env, workdir=step.workdir)
        else:
            assert step.image
            workdir = step.workdir or ("/workspace/" + subdir if subdir else "/workspace")
            argv = dc.run(step.image, command, name=container, env=step.env,
                          mounts={"{workspace}": "/workspace"}, workdir=workdir)
        tests.append(TestStepPlan(step.name, tuple(argv), container, step.service))
    pushes = tuple(tuple(dc.push(ref)) for svc, ref in images.items() if svc not in reused)
    source = Source(str(project.repo_root), subdir)
    return Plan(cfg.app, trigger, source, images, tuple(builds), tuple(tests), pushes, deploy_plan(project),
                notes=project.notes, sources=tuple(sources[svc] for svc in cfg.build if svc in sources),
                build_cache=cache_type, cache_refs=cache_refs)


def deploy_plan(project: Project) -> DeployPlan:
    """The hosts and how to deploy to them; all that rollback, status and the lock commands need."""
    cfg = project.config
    login = None
    if cfg.registry.username:
        login = tuple(dc.login(cfg.registry.url.split("/")[0], cfg.registry.username))
    rollout = rollout_steps(project) if project.swarm is None else ()  # a swarm rolls out by its own plan
    targets = tuple(
        HostTarget(host=h, key_path=str(k) if (k := resolve_key_path(project, h)) else None, layout=cfg.layout(),
                   rollout=tuple(r for r in rollout if (runs := cfg.host_services(h)) is None or r.service in runs))
        for h in cfg.hosts
    )
    return DeployPlan(
        app=cfg.app, targets=targets,
        registry=RegistryAccess(cfg.registry.url, login, cfg.registry.password_secret, cfg.registry.username),
        proxy=cfg.proxy or project.labels, env=dict(cfg.env), secrets=tuple(cfg.secrets),
        secrets_file=str(project.root / cfg.secrets_file), keep_releases=cfg.deploy.keep_releases,
        lock_wait=cfg.deploy.lock_wait, lock_ttl=cfg.deploy.lock_ttl,
        compose=compose_call(project),
        uploads=tuple((f.path, f.mode) for f in project.inputs.files),
        data_dirs=project.inputs.data_dirs,
        not_deployed=tuple(project.inactive.items()),
        profiles=tuple(cfg.deploy.profiles),
        batches=batches(len(targets), cfg.deploy.batch), batch_wait=cfg.deploy.batch_wait,
        build_secrets=tuple(dict.fromkeys(n for spec in cfg.build.values() for n in spec.secrets)),
        swarm=project.swarm,
    )


def compose_call(project: Project) -> ComposeCall:
    """The release's Compose files and env files inside its copy of the repository, then shipline's own."""
    compose = project.compose
    source = {f.path for f in project.inputs.files}
    dotenv = posixpath.normpath(posixpath.join(compose.project_dir, ".env"))
    return ComposeCall(
        files=(*(f"{SOURCE_DIR}/{f}" for f in compose.files), OVERRIDE_FILE),
        project_dir=posixpath.normpath(f"{SOURCE_DIR}/{compose.project_dir}"),
        env_files=(*([f"{SOURCE_DIR}/{dotenv}"] if dotenv in source else []), ENV_FILE))


def batches(hosts: int, size: int | str) -> tuple[tuple[int, ...], ...]:
    """Host indexes in switching order, `size` hosts (or `size` percent of them, rounded up) per batch."""
    per = max(1, -(-hosts * int(size[:-1]) // 100)) if isinstance(size, str) else size
    return tuple(tuple(range(i, min(i + per, hosts))) for i in range(0, hosts, per))


def rollout_steps(project: Project) -> tuple[ServiceRollout, ...]:
    """Services in rollout order; migrations run right before their service is updated."""
    cfg = project.config
    steps = []
    for svc in project.rollout_order():
        migrate = None
        if cfg.deploy.migrate and cfg.deploy.migrate.service == svc:
            migrate = ("run", "--rm", "--no-deps", "-T", svc, *dc.shell_command(cfg.deploy.migrate.command))
        sd = cfg.service_deploy(svc)
        decided = project.rollouts[svc]
        after = tuple(project.compose.services[svc].depends_on) if svc in project.compose.services else ()
        steps.append(ServiceRollout(svc, svc in cfg.build, cfg.health_timeout(svc), migrate, decided.strategy,
                                    routed_port(project, svc), sd.drain, sd.stop_timeout, decided.why, after))
    return tuple(steps)


def routed_port(project: Project, service: str) -> int | None:
    """The container port the proxy sends the service's requests to (None: the proxy does not route to it)."""
    cfg = project.config
    if cfg.proxy:
        route = cfg.proxy.routes.get(service)
        return route.port if route else None
    labelled = project.labels.routes.get(service) if project.labels else None
    return next(iter(labelled.backends.values()))[0] if labelled else None


def describe_rollout(r: ServiceRollout) -> str:
    health = f"healthy within {r.health_timeout:g}s (its own check run in the container, then Docker agrees)"
    if r.strategy == "zero-downtime":
        return (f"zero-downtime: start new container next to the old, wait {health}, switch the proxy to port "
                f"{r.port} and confirm, then drain {r.drain:g}s and stop the old (stop timeout {r.stop_timeout}s)")
    if r.strategy == "job":
        return f"job: run to completion within {r.health_timeout:g}s; exit status 0 is success, anything else fails the deploy"
    if r.strategy == "start-first":
        return f"start-first: start new container, wait {health}, then stop the old (stop timeout {r.stop_timeout}s)"
    if not r.built:
        return f"recreate if its definition changed, else leave running; wait {health}"
    return f"recreate: replace the container, wait {health}" + (", switch the proxy" if r.port else "")
