"""What a Swarm deploy (`deploy.mode: swarm`) will do, decided from shipline.yml and the Compose file: plain data.

Each active service gets one of four strategies (docs/swarm.md):

- zero-downtime: routed by the edge proxy. A Swarm service per release (`<app>_<svc>-r<N>`, network alias
  `<svc>`); once every new task is healthy, Traefik on every node is switched to the new tasks and confirms it.
- start-first: built by shipline, nothing routes to it: a Swarm service per release too; the previous one is
  removed once every new task is healthy.
- recreate: the edge proxy, a database, anything shipline does not build (or `strategy: recreate`): updated in
  place by `docker stack deploy` when its definition changed, as Swarm's `update_config` says.
- job: a one-off service per release that must complete (exit status 0) before the release's services start.

Everything here is pure, so `shipline plan` and the tests see every decision without a swarm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .compose import ComposeProject, ReleaseInputs
from .config import Config

VERSIONED = ("zero-downtime", "start-first")


@dataclass(frozen=True)
class SwarmService:
    name: str  # the Compose service
    strategy: str  # zero-downtime | start-first | recreate | job
    why: str
    health_timeout: float
    drain: float = 0
    stop_timeout: int = 30
    port: int | None = None  # routed: the container port the edge proxy sends requests to
    network: str | None = None  # routed: the Swarm network the edge proxy reaches its tasks on

    @property
    def versioned(self) -> bool:
        """A Swarm service per release, so the previous release keeps serving until the switch."""
        return self.strategy in VERSIONED


@dataclass(frozen=True)
class Migration:
    service: str  # the built service whose new image and definition it runs with
    command: tuple[str, ...]
    timeout: float


@dataclass(frozen=True)
class SwarmPlan:
    stack: str  # the stack's name: the app's
    compose: dict[str, Any]  # the Compose file(s) merged, `${VAR}` as written: `docker stack deploy` interpolates
    services: tuple[SwarmService, ...]  # in the order they are rolled out
    project_dir: str  # repository-relative directory the Compose file's relative paths start from
    proxy: str | None = None  # the edge proxy's service (Traefik, reading shipline's route files)
    api_port: int | None = None  # Traefik's API port inside its container
    migrate: Migration | None = None
    defaults: dict[str, str] = field(default_factory=dict)  # the committed .env's values (the lowest precedence)

    def service(self, name: str) -> SwarmService:
        return next(s for s in self.services if s.name == name)

    @property
    def in_place(self) -> tuple[SwarmService, ...]:
        return tuple(s for s in self.services if s.strategy == "recreate")

    @property
    def jobs(self) -> tuple[SwarmService, ...]:
        return tuple(s for s in self.services if s.strategy == "job")

    @property
    def versioned(self) -> tuple[SwarmService, ...]:
        return tuple(s for s in self.services if s.versioned)

    @property
    def routed(self) -> tuple[SwarmService, ...]:
        return tuple(s for s in self.services if s.port is not None)


def networks_of(spec: Mapping[str, Any] | None) -> list[str]:
    """A service's networks by their Compose names (either form); none means Compose's `default`."""
    nets = (spec or {}).get("networks")
    if not nets:
        return ["default"]
    return [str(n) for n in nets]


def swarm_network(compose: Mapping[str, Any], stack: str, name: str) -> str:
    """The Swarm name of a Compose network: its `name:`, an external one's key, else `<stack>_<key>`."""
    spec = (compose.get("networks") or {}).get(name) or {}
    if isinstance(spec, Mapping) and spec.get("name"):
        return str(spec["name"])
    if isinstance(spec, Mapping) and spec.get("external"):
        return name
    return f"{stack}_{name}"


def decide(config: Config, compose: ComposeProject, raw: Mapping[str, Any], order: Sequence[str],
           inputs: ReleaseInputs, file: str, defaults: Mapping[str, str]) -> tuple[SwarmPlan | None, list[str]]:
    """The Swarm plan for the active services in `order`, or the problems that stop it (one paragraph each)."""
    problems: list[str] = []
    proxy = config.proxy
    where = compose.where
    if proxy and proxy.type != "traefik":
        problems.append(f"{file}: proxy.type: in swarm mode shipline switches Traefik's file provider on every node "
                        f"and confirms through each node's Traefik API; {proxy.type} is not supported there yet. Run "
                        "Traefik as the edge proxy (docs/swarm.md).")
    if config.roles or any(h.roles is not None for h in config.hosts):
        problems.append(f"{file}: roles: in swarm mode Swarm places every task itself, so roles cannot say which "
                        "services run where. Remove `roles:` (and the hosts' `roles`) and pin services with "
                        "`deploy.placement.constraints` in the Compose file (docs/swarm.md).")
    for f in inputs.files:
        mounts = [k for k in f.keys if ".volumes[" in k]
        if mounts:
            problems.append(f"{where}: {mounts[0]}: a Swarm task mounts a path of the node it runs on, and {f.path} "
                            "of the commit reaches the manager only. Use `configs:` (a file of the commit becomes a "
                            "Swarm config on every node) or build the file into the image.")
    for d in inputs.data_dirs:
        problems.append(f"{where}: {d.key}: a Swarm task mounts a path of whichever node it runs on, so "
                        f"./{d.path} would be a different directory on each node. Use a named volume (and pin the "
                        "service to the node that holds it with `deploy.placement.constraints`).")
    jobs = compose.jobs(order)
    services_raw = raw.get("services") or {}
    out = []
    for name in order:
        svc = compose.services[name]
        sd = config.service_deploy(name)
        routed = proxy is not None and name in proxy.routes
        if sd.strategy == "job" or name in jobs:
            strategy = "job"
            why = ("set in shipline.yml" if sd.strategy == "job" else
                   f"{jobs[name]} waits for it to complete (`service_completed_successfully`)")
            why += ": a one-off service per release (one task, never restarted) that must exit 0 before the release's services start"
        elif proxy is not None and name == proxy.service:
            strategy, why = "recreate", "it is the edge proxy: updated in place by `docker stack deploy` when its definition changes"
        elif sd.strategy == "recreate":
            strategy, why = "recreate", "set in shipline.yml: updated in place by `docker stack deploy` (Swarm's `update_config`)"
        elif routed or name in config.build or sd.strategy in VERSIONED:
            strategy = "zero-downtime" if routed else "start-first"
            why = (f"the edge proxy routes to it: a Swarm service per release ({config.app}_{name}-r<N>, alias "
                   f"{name}), switched to on every node once all its tasks are healthy" if routed else
                   f"{'built by shipline' if name in config.build else 'set in shipline.yml'}, nothing routes to it: "
                   "a Swarm service per release, the previous one removed once every new task is healthy")
            fixed = svc.fixed_host_ports()
            if fixed:
                problems.append(f"{where}: {svc.key}.ports: it publishes port {fixed[0].published}, which two "
                                "releases' services cannot both hold. Let the proxy publish the port (remove it here), "
                                f"or set `deploy.services.{name}.strategy: recreate` in {file}.")
        else:
            strategy, why = "recreate", "runs a published image: updated in place by `docker stack deploy` when its definition changes"
        port = network = None
        if routed and proxy is not None:
            port = proxy.routes[name].port
            shared = sorted(set(networks_of(services_raw.get(name))) & set(networks_of(services_raw.get(proxy.service))))
            if shared:
                network = swarm_network(raw, config.app, shared[0])
            else:
                problems.append(f"{where}: services.{name}.networks: the edge proxy {proxy.service} routes to {name} "
                                "but shares no network with it. Put both on one overlay network.")
        out.append(SwarmService(name, strategy, why, config.health_timeout(name), sd.drain, sd.stop_timeout, port,
                                network))
    migrate = None
    if config.deploy.migrate:
        m = config.deploy.migrate
        command = (("sh", "-c", m.command) if isinstance(m.command, str) else tuple(m.command))
        migrate = Migration(m.service, command, config.health_timeout(m.service))
    if problems:
        return None, problems
    api_port = int(proxy.api.rsplit(":", 1)[1]) if proxy and proxy.api else None
    return SwarmPlan(config.app, dict(raw), tuple(out), compose.project_dir, proxy.service if proxy else None,
                     api_port, migrate, dict(defaults)), []


def describe(sp: SwarmPlan, hosts: Sequence[str], app_dir: str, images: Mapping[str, str], keep: int,
             ignored: Mapping[str, Sequence[str]]) -> list[str]:
    """The deploy stage of `shipline plan` for a swarm: every step and the commands it runs."""
    release = f"~/{app_dir}/releases/<N>"
    deploy = f"docker stack deploy --with-registry-auth --resolve-image changed --compose-file {release}/{{}} {sp.stack}"
    manager, others = hosts[0], hosts[1:]
    lines = [f"5. deploy     Docker Swarm: stack {sp.stack} through the manager {manager}, under every host's deploy lock",
             f"     nodes: {', '.join(hosts)} (each must be a node of {manager}'s swarm; `shipline swarm init`)",
             "     heal: remove services of releases that never went live and leftover one-off services; a node "
             "routing elsewhere is switched back",
             f"     upload to {manager}: {release}/ (0700): the commit's files the stack uses, stack.env (0600, "
             "the values of ${VAR}: sourced before each `docker stack deploy`, never in a command line), "
             "secrets and configs (each a Swarm object named by its content's digest)",
             *[f"     pull on every node: {ref}" for ref in images.values()]]
    in_place = [s.name for s in sp.in_place]
    if in_place:
        lines += [f"     1) {deploy.format('stack-base.yml')}",
                  f"        updates in place, when their definition changed: {', '.join(in_place)}; wait until Swarm "
                  "reports each converged (an update Swarm gave up fails the deploy)"]
    if sp.migrate:
        lines += [f"     2) migrate: one-off service {sp.stack}_migrate-r<N> ({sp.migrate.service}'s new image and "
                  f"definition, command {' '.join(sp.migrate.command)}): {deploy.format('oneoff-migrate.yml')}; it must "
                  f"complete within {sp.migrate.timeout:g}s (its log: whole if it fails, else with -v), then it is removed"]
    for s in sp.jobs:
        lines.append(f"     2) job {s.name}: one-off service {sp.stack}_{s.name}-r<N>: {deploy.format(f'oneoff-{s.name}.yml')}; "
                     f"must complete within {s.health_timeout:g}s")
    if sp.versioned:
        lines.append(f"     3) {deploy.format('stack.yml')}")
        for s in sp.versioned:
            lines.append(f"        {s.name} -> {sp.stack}_{s.name}-r<N> (network alias {s.name}), beside the previous "
                         f"release's; every task running and healthy within {s.health_timeout:g}s")
    if sp.routed:
        where = ", ".join(hosts)
        lines.append(f"     4) switch Traefik on every node ({where}): ~/{app_dir}/proxy/<app>-<service>.yml replaced, "
                     f"confirmed through the node's Traefik API (port {sp.api_port} of its task, reached over SSH at "
                     "the task's docker_gwbridge address)")
        lines += [f"        {s.name}: http://{sp.stack}_{s.name}{'-r<N>' if s.versioned else ''}:{s.port} (on {s.network}, "
                  "where Swarm's DNS resolves the name to the service's running tasks)" for s in sp.routed]
    drain = max((s.drain for s in sp.routed), default=0)
    lines.append(f"     5) drain {drain:g}s, then `docker service rm` the previous release's services (Swarm stops "
                 "their tasks within their stop_grace_period)")
    lines.append("     on any failure before 5): nodes switched back, new services removed, services updated in place "
                 "rolled back (`docker service rollback`)")
    for s in sp.services:
        lines.append(f"     {s.name}: {s.strategy}: {s.why}")
    lines += [f"     {svc}: left out of the stack file (Swarm does not read them): {', '.join(keys)}"
              for svc, keys in ignored.items()]
    lines.append(f"     record the release in ~/{app_dir}/ledger.jsonl on {manager}; prune files and images older than "
                 f"the last {keep} successful releases" + (f" (images on {', '.join(others)} too)" if others else ""))
    return lines
