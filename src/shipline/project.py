"""A project: shipline.yml and the Compose files it names, read from one source (a commit or the working tree),
cross-checked against each other, with the rollout decided per service.

Everything a user can get wrong across the two files is reported here, every problem at once, one paragraph
each, naming the file, the key and the fix.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from .compose import ComposeCycle, ComposeProject, ReleaseInputs, VarUse, release_inputs
from .compose import load_project as load_compose
from .compose.load import merged_as_written, parse_dotenv
from .config import Config, Host, ServiceDeploy, parse_config
from .errors import ConfigError
from .layout import HostLayout
from .sourcetree import CommitTree, SourceTree, WorkTree, normalize
from .swarm_plan import SwarmPlan
from .swarm_plan import decide as decide_swarm
from .traefik_labels import LabelRouting, label_routing
from .yamlload import YamlError, collector_paused
from .yamlload import load as load_yaml

# Variables shipline itself writes into every release's env file.
PROVIDED = ("COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "SHIPLINE_RELEASE", "SHIPLINE_PROXY_DIR", "SHIPLINE_DATA_DIR")
PROVIDED_PREFIX = "SHIPLINE_IMAGE_"
OUTSIDE = "is outside the repository; a build sees only the deployed commit's files"


@dataclass(frozen=True)
class Rollout:
    """How one service is replaced, and why: printed by `shipline plan`."""

    strategy: str  # zero-downtime | start-first | recreate | job
    why: str


@dataclass(frozen=True)
class Project:
    """A loaded, cross-checked configuration and where it lives."""

    config: Config
    path: Path  # shipline.yml on this machine (the secrets file and SSH keys are found next to it)
    compose: ComposeProject
    repo_root: Path
    config_in_repo: str = "shipline.yml"  # repository-relative path of shipline.yml
    source: str = "the working tree"  # where shipline.yml and the Compose files were read from
    inputs: ReleaseInputs = field(default_factory=lambda: ReleaseInputs((), ()))
    rollouts: dict[str, Rollout] = field(default_factory=dict)  # active services only
    labels: LabelRouting | None = None  # Traefik docker-label routes shipline switches (no `proxy:` in shipline.yml)
    inactive: dict[str, str] = field(default_factory=dict)  # service -> why it is not deployed
    notes: tuple[str, ...] = ()
    swarm: SwarmPlan | None = None  # deploy.mode: swarm

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def root_in_repo(self) -> str:
        rel = posixpath.dirname(self.config_in_repo)
        return rel

    @property
    def state_dir(self) -> Path:
        return self.root / ".shipline"

    def rollout_order(self) -> list[str]:
        """The configured or dependency order of the active services; the proxy first, since others are switched through it."""
        proxy = self.config.proxy.service if self.config.proxy else self.labels.service if self.labels else None
        return service_order(self.config, self.compose, self.rollouts, proxy)

    def layout(self) -> HostLayout:
        return self.config.layout()


def service_order(config: Config, compose: ComposeProject, active: Iterable[str], proxy: str | None) -> list[str]:
    """`deploy.order` or the dependency order, of the active services only; the proxy first."""
    wanted = set(active)
    order = [s for s in (config.deploy.order or compose.default_order()) if s in wanted]
    if proxy in order:
        order.remove(proxy)
        order.insert(0, proxy)
    return order


def find_repo_root(directory: Path) -> Path:
    """The git work tree holding `directory` (shipline.yml may sit in a subdirectory); itself if none."""
    directory = directory.resolve()
    for d in (directory, *directory.parents):
        if (d / ".git").exists():
            return d
    return directory


def branch_hint(path: Path) -> str:
    """The deploy branch named in the working tree's shipline.yml, to find the commit to read it from."""
    try:
        data = load_yaml(path.read_bytes())
    except (OSError, YamlError):
        return "main"
    branch = data.get("branch") if isinstance(data, dict) else None
    return branch if isinstance(branch, str) and branch else "main"


def load_project(path: Path, env: Mapping[str, str] | None = None, *, lenient: bool = False,
                 commit: str | None = None) -> Project:
    """Read, validate and cross-check shipline.yml and its Compose files; raises ConfigError before anything runs.

    With `commit`, both are read from that commit (what will be deployed); otherwise from the working tree.
    """
    env = os.environ if env is None else env
    file = str(path)
    repo = find_repo_root(path.parent)
    rel = path.resolve().relative_to(repo).as_posix()
    tree: SourceTree = CommitTree(repo, commit) if commit else WorkTree(repo)
    raw = tree.read(rel)
    uncommitted = raw is None and commit is not None and path.is_file()
    if uncommitted:  # a shipline.yml never committed (a per-machine variant): the Compose files still come from the commit
        raw = path.read_bytes()
    if raw is None:
        raise ConfigError([f"{file}: no such file. Run `shipline init` to write a starter shipline.yml, or pass `--config PATH`."])
    try:
        data = load_yaml(raw)
    except YamlError as exc:
        raise ConfigError([f"{file}: {exc}. Check the indentation and quoting there."]) from None
    config = parse_config(data, file, env, lenient=lenient)
    with collector_paused():
        project, problems = _cross_check(config, path, repo, rel, tree, file, check_keys=not lenient)
    if problems:
        raise ConfigError(problems)
    if commit:
        project = _with_worktree_note(project, tree, repo)
    if uncommitted:
        project = replace(project, notes=(*project.notes, f"note: {rel} is not in {tree.label}: this plan uses the "
                                          "working tree's copy (the Compose files and what they use come from the commit)."))
    return project


def _with_worktree_note(project: Project, tree: SourceTree, repo: Path) -> Project:
    work = WorkTree(repo)
    paths = [project.config_in_repo, *(f.path for f in project.inputs.files)]
    changed = [p for p in dict.fromkeys(paths) if tree.is_file(p) and work.read(p) != tree.read(p)]
    if not changed:
        return project
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    note = (f"note: the working tree differs from {tree.label} in {shown}; this is the plan for the commit. "
            "Commit your changes to deploy them.")
    return replace(project, notes=(*project.notes, note))


def _cross_check(config: Config, path: Path, repo: Path, rel: str, tree: SourceTree, file: str,
                 *, check_keys: bool = True) -> tuple[Project, list[str]]:
    problems: list[str] = []
    base = posixpath.dirname(rel)
    compose_files = [normalize(posixpath.join(base, f)) for f in config.compose_files]
    for i, f in enumerate(compose_files):
        if f.startswith("../") or f == "..":
            key = "compose" if isinstance(config.compose, str) else f"compose[{i}]"
            problems.append(f"{file}: {key}: {config.compose_files[i]} is outside the repository. Keep the Compose files in it.")
    if problems:
        raise ConfigError(problems)
    provided = _provided(config, tree, compose_files)
    compose = load_compose(compose_files, tree, lambda n: _host_value(n, config, provided), config_file=file)
    problems += [str(p) for p in compose.problems_apart_from_unset(
        lambda n: n not in provided and not n.startswith(PROVIDED_PREFIX))]
    services = set(compose.services)
    known = bool(services)
    profiles = config.deploy.profiles
    active = compose.active(profiles)
    deployed = set(active)
    inactive = {n: f"profile {', '.join(s.profiles)} not enabled (deploy.profiles)"
                for n, s in compose.services.items() if n not in deployed}
    inputs = release_inputs(compose, tree, active)
    problems += [str(p) for p in inputs.problems]
    problems += _check_build(config, compose, tree, base, file, active)
    problems += _check_tests(config, file)
    if known:
        problems += _check_deploy(config, compose, file, active)
        problems += _check_roles(config, services, file)
    swarm_mode = config.deploy.mode == "swarm"
    labels = label_routing(compose, active) if known and config.proxy is None and not swarm_mode else None
    problems += _check_proxy(config, services, file, set(labels.routes) if labels else set()) if known else []
    problems += _check_variables(compose.needed_variables(active), provided)
    rollouts: dict[str, Rollout] = {}
    swarm: SwarmPlan | None = None
    if known and swarm_mode:
        order = service_order(config, compose, active, config.proxy.service if config.proxy else None)
        swarm, swarm_problems = decide_swarm(config, compose, merged_as_written(compose_files, tree), order, inputs,
                                             file, _dotenv(tree, compose_files))
        problems += swarm_problems
        rollouts = {s.name: Rollout(s.strategy, s.why) for s in swarm.services} if swarm else {}
    elif known:
        rollouts, strategy_problems = decide_rollouts(config, compose, active, file, labels)
        problems += strategy_problems
    for i, host in enumerate(config.hosts):
        if host.ssh_key and check_keys:
            key_path = Path(os.path.expanduser(host.ssh_key))
            key_path = key_path if key_path.is_absolute() else path.resolve().parent / key_path
            if not key_path.is_file():
                problems.append(f"{file}: hosts[{i}].ssh_key: the private key {key_path} does not exist. Give the path of the SSH key that may log in to {host.address}.")
    swarm_keys = sorted({f"deploy.{k}" for n in active for k in compose.services[n].swarm_keys})
    notes = (f"note: {compose.where} uses {', '.join(swarm_keys)}, which only Docker Swarm reads (`docker stack "
             "deploy`); `docker compose` on each host ignores them.",) if swarm_keys and not swarm_mode else ()
    project = Project(config=config, path=path.resolve(), compose=compose, repo_root=repo, config_in_repo=rel,
                      source=tree.label, inputs=inputs, rollouts=rollouts, inactive=inactive, labels=labels,
                      notes=notes, swarm=swarm)
    return project, problems


def _provided(config: Config, tree: SourceTree, compose_files: list[str]) -> dict[str, str | None]:
    """Variables the hosts will have: shipline's own, `env:`, `secrets:` (value unknown here), the project's `.env`."""
    values: dict[str, str | None] = dict(_dotenv(tree, compose_files))
    values |= {name: None for name in PROVIDED}
    values |= dict(config.env)
    values |= {name: None for name in config.secrets}
    return values


def _dotenv(tree: SourceTree, compose_files: list[str]) -> dict[str, str]:
    """The committed `.env` beside the first Compose file, which Compose reads for defaults."""
    dotenv = tree.read(normalize(posixpath.join(posixpath.dirname(compose_files[0]), ".env")))
    return parse_dotenv(dotenv.decode("utf-8", "replace")) if dotenv is not None else {}


def _host_value(name: str, config: Config, provided: dict[str, str | None]) -> str | None:
    """What `${name}` becomes on the hosts, as far as a plan can know: secrets stay `${NAME}`, never their value."""
    if name in provided or name.startswith(PROVIDED_PREFIX):
        value = provided.get(name)
        return value if value is not None else f"${{{name}}}"
    return None


def _check_variables(needed: list[VarUse], provided: Mapping[str, str | None]) -> list[str]:
    """Each `${NAME}` that has no default and that shipline.yml does not provide: one paragraph per name."""
    first: dict[str, VarUse] = {}
    count: dict[str, int] = {}
    for use in needed:
        if use.name not in provided and not use.name.startswith(PROVIDED_PREFIX):
            first.setdefault(use.name, use)
            count[use.name] = count.get(use.name, 0) + 1
    problems = []
    for name, use in first.items():
        more = f" (and {count[name] - 1} more place{'s' if count[name] > 2 else ''})" if count[name] > 1 else ""
        said = f" with the message {use.message!r}" if use.message else ""
        problems.append(
            f"{use.file}: {use.key}: uses ${{{name}}}{said}{more}, which shipline.yml does not provide, so on the "
            f"servers it would be empty. Add {name} to `secrets:` in shipline.yml if it is a password, token or key, "
            f"or to `env:` with its value; or give it a default in the Compose file: ${{{name}:-value}}.")
    return problems


def _check_build(config: Config, compose: ComposeProject, tree: SourceTree, base: str, file: str,
                 active: list[str]) -> list[str]:
    problems = []
    services = compose.services
    for name, spec in config.build.items():
        if services and name not in services:
            problems.append(f"{file}: build.{name}: there is no service {name!r} in {compose.where}. Build keys name Compose services: {', '.join(sorted(services))}.")
        context = normalize(posixpath.join(base, spec.context))
        if context == ".." or context.startswith("../") or spec.context.startswith("/"):
            problems.append(f"{file}: build.{name}.context: {spec.context!r} {OUTSIDE}. Give a directory inside the repository, relative to {file}.")
        elif not tree.is_dir(context):
            problems.append(f"{file}: build.{name}.context: the directory {spec.context} does not exist in {tree.label}. Give the build context relative to {file}.")
        else:
            dockerfile = normalize(posixpath.join(context, spec.dockerfile or "Dockerfile"))
            if dockerfile == ".." or dockerfile.startswith("../"):
                problems.append(f"{file}: build.{name}.dockerfile: {spec.dockerfile!r} {OUTSIDE}. Give a Dockerfile inside the repository, relative to the build context.")
            elif not tree.is_file(dockerfile):
                problems.append(f"{file}: build.{name}.dockerfile: {spec.dockerfile or 'Dockerfile'} does not exist in {spec.context} ({tree.label}). Give the Dockerfile's path relative to the build context.")
    for name in active:
        svc = services[name]
        if svc.build is not None and svc.image is None and name not in config.build:
            problems.append(f"{file}: build: the Compose service {name!r} is built from source (`build:` without `image:`), "
                            f"but shipline.yml does not build it, so the servers would have no image to run. "
                            f"Add `build: {{{name}: {{context: {svc.build.context}}}}}` (`shipline init` writes it for you).")
    return problems


def _check_tests(config: Config, file: str) -> list[str]:
    problems = []
    for i, step in enumerate(config.test):
        if step.service is not None and step.service not in config.build:
            problems.append(f"{file}: test[{i}].service: {step.service!r} is not built by shipline. Use one of the `build:` services ({', '.join(config.build) or 'none'}) or give `image:` instead.")
    seen: set[str] = set()
    for step in config.test:
        if step.name in seen:
            problems.append(f"{file}: test: two steps are named {step.name!r}. Give each step its own name.")
        seen.add(step.name)
    return problems


def _check_deploy(config: Config, compose: ComposeProject, file: str, active: list[str]) -> list[str]:
    problems = []
    services = compose.services
    where = compose.where
    active_set = set(active)
    known_profiles = {p for s in services.values() for p in s.profiles}
    for i, profile in enumerate(config.deploy.profiles):
        if profile != "*" and profile not in known_profiles:
            problems.append(f"{file}: deploy.profiles[{i}]: no service of {where} is in profile {profile!r}. Profiles there: {', '.join(sorted(known_profiles)) or 'none'}.")
    for i, name in enumerate(config.deploy.order or []):
        if name not in services:
            problems.append(f"{file}: deploy.order[{i}]: there is no service {name!r} in {where}. Services: {', '.join(sorted(services))}.")
    if config.deploy.order is not None:
        missing = [s for s in config.build if s in active_set and s not in config.deploy.order]
        if missing:
            problems.append(f"{file}: deploy.order: built services {', '.join(missing)} are not in the order, so they would never be deployed. Add them.")
    for name in config.deploy.services:
        if name not in services:
            problems.append(f"{file}: deploy.services.{name}: there is no service {name!r} in {where}.")
    if config.deploy.migrate and config.deploy.migrate.service not in config.build:
        problems.append(f"{file}: deploy.migrate.service: {config.deploy.migrate.service!r} is not built by shipline; migrations run in a freshly built image. Use one of: {', '.join(config.build)}.")
    for name in active:
        for dep, spec in services[name].depends_on.items():
            if dep in services and dep not in active_set and spec.required:
                problems.append(f"{where}: services.{name}.depends_on: {name} needs {dep!r}, which is in profile "
                                f"{', '.join(services[dep].profiles)} that is not enabled. Add it to `deploy.profiles` "
                                f"in {file}, or mark the dependency `required: false`.")
            elif dep not in services and spec.required:
                problems.append(f"{where}: services.{name}.depends_on: there is no service {dep!r}. Define it or remove the dependency.")
    if not config.deploy.order:
        try:
            compose.default_order()
        except ComposeCycle as exc:
            problems.append(f"{file}: deploy.order: {exc}; give the order explicitly.")
    return problems


def _check_roles(config: Config, services: set[str], file: str) -> list[str]:
    problems = []
    for role, names in config.roles.items():
        for name in names:
            if name not in services:
                problems.append(f"{file}: roles.{role}: there is no service {name!r} in {' + '.join(config.compose_files)}. Roles list Compose services: {', '.join(sorted(services))}.")
    for i, host in enumerate(config.hosts):
        for role in host.roles or []:
            if role not in config.roles:
                problems.append(f"{file}: hosts[{i}].roles: no role {role!r} is defined. Define it under `roles:` ({role}: [services...]) or use one of: {', '.join(config.roles) or 'none defined'}.")
    runs = [config.host_services(h) for h in config.hosts]
    if all(r is not None for r in runs):
        nowhere = sorted(services - set().union(*(r for r in runs if r is not None)))
        if nowhere:
            problems.append(f"{file}: roles: no host runs {', '.join(nowhere)}. Add them to a role a host has, or give a host no `roles` (it then runs every service).")
    return problems


def _check_proxy(config: Config, services: set[str], file: str, labelled: set[str]) -> list[str]:
    """`labelled`: services routed by Traefik labels that shipline takes over (no `proxy:` then)."""
    problems: list[str] = []
    proxy = config.proxy
    if proxy:
        if proxy.service not in services:
            problems.append(f"{file}: proxy.service: there is no service {proxy.service!r} in {' + '.join(config.compose_files)}. Name the service that runs {proxy.type}.")
        for name in proxy.routes:
            if name not in services:
                problems.append(f"{file}: proxy.routes.{name}: there is no service {name!r} in {' + '.join(config.compose_files)}. Routes name Compose services.")
            if name == proxy.service:
                problems.append(f"{file}: proxy.routes.{name}: the proxy cannot route to itself.")
    for name, svc in config.deploy.services.items():
        routed = (proxy is not None and name in proxy.routes) or name in labelled
        if svc.strategy == "zero-downtime" and not routed:
            problems.append(f"{file}: deploy.services.{name}.strategy: zero-downtime switches the proxy, but no proxy route leads to {name}. Add `proxy.routes.{name}`, or use `start-first` for a service nothing routes to.")
        if proxy and name == proxy.service and svc.strategy not in (None, "recreate"):
            problems.append(f"{file}: deploy.services.{name}.strategy: the proxy itself is updated with `recreate` (it is left running when unchanged).")
    return problems


def decide_rollouts(config: Config, compose: ComposeProject, active: list[str], file: str,
                    labels: LabelRouting | None = None) -> tuple[dict[str, Rollout], list[str]]:
    """Each active service's strategy and the reason, from shipline.yml and what the Compose file allows."""
    out: dict[str, Rollout] = {}
    problems: list[str] = []
    jobs = compose.jobs(active)
    proxy = config.proxy
    routes: set[str] = set(proxy.routes) if proxy else set(labels.routes) if labels else set()
    proxy_service = proxy.service if proxy else labels.service if labels else None
    kept = labels.kept if labels else {}
    for name in active:
        svc = compose.services[name]
        configured = (config.deploy.services.get(name) or ServiceDeploy()).strategy
        single = svc.singleton_reason()
        if single and svc.replicas and svc.replicas > 1:
            problems.append(f"{compose.where}: {svc.key}.deploy.replicas: {svc.replicas} replicas cannot run on one host "
                            f"with Compose, because {single} (in a Swarm the routing mesh shares published ports; "
                            "shipline deploys with Compose). Set `replicas: 1`, or let a proxy publish the port.")
        if configured in ("zero-downtime", "start-first") and single:
            problems.append(f"{file}: deploy.services.{name}.strategy: {configured} runs the new container beside the old one, "
                            f"but {single} ({compose.where}, {svc.key}). Use `recreate`, or remove that from the Compose file.")
        if configured:
            out[name] = Rollout(configured, "set in shipline.yml")
        elif name in jobs:
            out[name] = Rollout("job", f"{jobs[name]} waits for it to complete (`service_completed_successfully`)")
        elif name == proxy_service:
            out[name] = Rollout("recreate", "it is the proxy: updated in place, left running when unchanged")
        elif name in routes and single:
            out[name] = Rollout("recreate", f"the proxy routes to it, but {single}")
        elif name in routes and not proxy:
            out[name] = Rollout("zero-downtime", "Traefik routes to it by its labels: shipline moves those routes into "
                                "its own files and switches them to the new container once healthy")
        elif name in routes:
            out[name] = Rollout("zero-downtime", "the proxy routes to it: the new container is switched to once healthy")
        elif name in kept:
            out[name] = Rollout("recreate", kept[name])
        elif single:
            out[name] = Rollout("recreate", single)
        elif name in config.build:
            out[name] = Rollout("recreate", "nothing routes to it through the proxy (`strategy: start-first` starts the new container before stopping the old)")
        else:
            out[name] = Rollout("recreate", "runs a published image: replaced only when its definition changes")
    return out, problems


def service_deploy(config: Config, service: str) -> ServiceDeploy:
    return config.deploy.services.get(service) or ServiceDeploy()


def resolve_key_path(project: Project, host: Host) -> Path | None:
    if host.ssh_key is None:
        return None
    key = Path(os.path.expanduser(host.ssh_key))
    return key if key.is_absolute() else project.root / key
