"""What shipline knows about a Compose project: its services and what each needs to run on a host.

Built from the merged YAML by `load`; every value that Compose would refuse becomes a Problem naming the
file, the key and the fix, so `shipline plan` can report all of them at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import syntax
from .syntax import ComposeSyntaxError, Dependency, EnvFile, Mount, Port

# Compose's own rule for service, volume, network, secret and config names (compose-spec.json).
NAME_RE = re.compile(r"^[a-zA-Z0-9._-]+$")
# Keys that only `docker stack deploy` (Swarm) reads; `docker compose` ignores them.
SWARM_ONLY = ("placement", "update_config", "rollback_config", "endpoint_mode")


@dataclass(frozen=True)
class Problem:
    """One thing to fix, as one paragraph: where (file and key) and what to do."""

    file: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}" if self.key else f"{self.file}: {self.message}"


@dataclass(frozen=True)
class VarUse:
    """A `${NAME}` in a Compose file: where, and whether it works without NAME being set."""

    name: str
    op: str  # "" for `${NAME}`/`$NAME`; ":-", "-", ":?", "?", ":+", "+"; "pass" for `environment: [NAME]`
    file: str
    key: str
    message: str = ""

    @property
    def needs_value(self) -> bool:
        return self.op in ("", ":?", "?")

    @property
    def service(self) -> str | None:
        """The service whose definition uses it (None: a top-level key such as `volumes:`)."""
        parts = self.key.split(".", 2)
        return parts[1] if parts[0] == "services" and len(parts) > 1 else None


@dataclass(frozen=True)
class Build:
    context: str  # as written; relative to the project directory unless a URL or absolute
    dockerfile: str | None = None
    dockerfile_inline: bool = False
    target: str | None = None
    args: dict[str, str | None] = field(default_factory=dict)  # None: taken from the environment


@dataclass(frozen=True)
class ComposeService:
    name: str
    image: str | None = None
    build: Build | None = None
    depends_on: dict[str, Dependency] = field(default_factory=dict)
    profiles: tuple[str, ...] = ()
    container_name: str | None = None
    network_mode: str | None = None
    restart: str | None = None
    ports: tuple[Port, ...] = ()
    expose: tuple[str, ...] = ()
    volumes: tuple[Mount, ...] = ()
    raw_volumes: tuple[Any, ...] = ()  # as written, index for index with `volumes` (overrides rewrite them)
    env_files: tuple[EnvFile, ...] = ()
    environment: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str | None] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    configs: tuple[str, ...] = ()
    command: list[str] | str | None = None
    healthcheck: bool = False  # has a test that is not disabled
    replicas: int | None = None
    networks: tuple[str, ...] = ()
    static_ips: tuple[str, ...] = ()  # `networks.NAME.ipv4_address` / `ipv6_address`
    swarm_keys: tuple[str, ...] = ()  # deploy.* keys only Swarm reads

    @property
    def key(self) -> str:
        return f"services.{self.name}"

    def fixed_host_ports(self) -> list[Port]:
        return [p for p in self.ports if p.published is not None]

    def singleton_reason(self) -> str | None:
        """Why two containers of this service cannot run side by side (None: they can)."""
        if self.container_name:
            return f"`container_name: {self.container_name}` allows one container"
        if self.network_mode == "host":
            return "`network_mode: host` shares the host's ports, so a second container could not bind them"
        if self.static_ips:
            return f"it has the fixed address {self.static_ips[0]} (`ipv4_address`), which one container can hold"
        fixed = self.fixed_host_ports()
        if fixed:
            shown = ", ".join(f"{p.host_ip + ':' if p.host_ip else ''}{p.published}:{p.target}" for p in fixed[:3])
            return f"it publishes fixed host port(s) {shown}, which a second container could not bind"
        return None


@dataclass(frozen=True)
class TopLevel:
    """A top-level `secrets:` or `configs:` entry: a file of the project, an env variable, inline, or external."""

    name: str
    file: str | None = None
    environment: str | None = None
    external: bool = False


@dataclass(frozen=True)
class RepoRef:
    """A file of the repository that Compose itself reads on the host (extends/include targets)."""

    path: str  # repository-relative
    key: str


@dataclass(frozen=True)
class ComposeProject:
    files: tuple[str, ...]  # repository-relative, in `-f` order
    project_dir: str  # repository-relative directory of the first file: relative paths start here
    services: dict[str, ComposeService]
    secrets: dict[str, TopLevel] = field(default_factory=dict)
    configs: dict[str, TopLevel] = field(default_factory=dict)
    volumes: frozenset[str] = frozenset()
    compose_refs: tuple[RepoRef, ...] = ()
    variables: tuple[VarUse, ...] = ()
    problems: tuple[Problem, ...] = ()

    @property
    def where(self) -> str:
        """How problems about the merged model name the files."""
        return " + ".join(self.files)

    def default_order(self) -> list[str]:
        """Dependencies first; services with no ordering between them keep their file order.

        Iterative and linear: a long `depends_on` chain neither recurses nor rescans the order.
        """
        order: list[str] = []
        placed: set[str] = set()
        for root in self.services:
            if root in placed:
                continue
            visiting = {root}
            stack: list[tuple[str, Iterable[str]]] = [(root, iter(self.services[root].depends_on))]
            while stack:
                name, deps = stack[-1]
                dep = next((d for d in deps if d in self.services and d not in placed), None)
                if dep is None:
                    stack.pop()
                    visiting.discard(name)
                    placed.add(name)
                    order.append(name)
                elif dep in visiting:
                    raise ComposeCycle(dep)
                else:
                    visiting.add(dep)
                    stack.append((dep, iter(self.services[dep].depends_on)))
        return order

    def active(self, profiles: Iterable[str] = ()) -> list[str]:
        """Services Compose starts with these profiles enabled: those without `profiles:` and the enabled ones."""
        enabled = set(profiles)
        return [n for n, s in self.services.items() if not s.profiles or "*" in enabled or enabled & set(s.profiles)]

    def needed_variables(self, active: Iterable[str]) -> list[VarUse]:
        """Uses of variables that must have a value on the servers: required ones anywhere (Compose stops on
        them whatever it starts), plain ones outside the services that are not deployed."""
        inactive = set(self.services) - set(active)
        return [v for v in self.variables if v.needs_value and (v.op != "" or v.service not in inactive)]

    def problems_apart_from_unset(self, unset: Callable[[str], bool]) -> list[Problem]:
        """The problems, except those at a key whose value is wrong only because a variable it needs has no
        value yet (`${PORT}:80` reads as `:80`): the variable's own problem says what to do."""
        keys = {u.key for u in self.variables if u.op in ("", ":?", "?") and unset(u.name)}
        return [p for p in self.problems if p.key not in keys]

    def jobs(self, active: Iterable[str]) -> dict[str, str]:
        """One-shot services, each with the dependent that waits for it to exit 0."""
        out: dict[str, str] = {}
        for name in active:
            for dep, spec in self.services[name].depends_on.items():
                if spec.condition == "service_completed_successfully" and dep not in out:
                    out[dep] = name
        return out


class ComposeCycle(Exception):
    def __init__(self, service: str) -> None:
        super().__init__(f"services form a depends_on cycle through {service!r}")
        self.service = service


def _problem(problems: list[Problem], where: str, key: str, message: str) -> None:
    problems.append(Problem(where, key, message))


def parse_service(name: str, spec: Any, where: str, problems: list[Problem]) -> ComposeService:
    """One merged service definition; what cannot be read is reported and left out."""
    key = f"services.{name}"
    if not NAME_RE.match(name):
        _problem(problems, where, key, f"{name!r} is not a valid service name: Compose allows letters, digits, "
                 "`.`, `_` and `-` only. Rename the service.")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        _problem(problems, where, key, "a service is a mapping of keys such as `image:`, `build:`, `ports:`.")
        return ComposeService(name)

    def read(field_key: str, reader: Any, *args: Any) -> Any:
        try:
            return reader(spec.get(field_key), *args)
        except ComposeSyntaxError as exc:
            _problem(problems, where, f"{key}.{field_key}", f"{exc}.")
            return None

    values: dict[str, Any] = {}
    image = spec.get("image")
    values["image"] = syntax.scalar(image) if image is not None else None
    values["build"] = _build(spec.get("build"), f"{key}.build", where, problems)
    values["depends_on"] = read("depends_on", syntax.depends_on) or {}
    profiles = read("profiles", syntax.names, "profiles") or []
    values["profiles"] = tuple(profiles)
    for k in ("container_name", "network_mode", "restart"):
        v = spec.get(k)
        values[k] = syntax.scalar(v) if v is not None and v is not False else ("no" if v is False and k == "restart" else None)
    ports = spec.get("ports") or []
    if not isinstance(ports, list):
        _problem(problems, where, f"{key}.ports", "`ports:` is a list.")
        ports = []
    parsed_ports = []
    for i, entry in enumerate(ports):
        try:
            parsed_ports.append(syntax.port(entry))
        except ComposeSyntaxError as exc:
            _problem(problems, where, f"{key}.ports[{i}]", f"{exc}.")
    values["ports"] = tuple(parsed_ports)
    expose = spec.get("expose") or []
    values["expose"] = tuple(syntax.scalar(e) for e in expose) if isinstance(expose, list) else ()
    raw_volumes = spec.get("volumes") or []
    if not isinstance(raw_volumes, list):
        _problem(problems, where, f"{key}.volumes", "`volumes:` is a list.")
        raw_volumes = []
    mounts, kept = [], []
    for i, entry in enumerate(raw_volumes):
        try:
            m = syntax.mount(entry)
        except ComposeSyntaxError as exc:
            _problem(problems, where, f"{key}.volumes[{i}]", f"{exc}.")
            continue
        if m is not None:
            mounts.append(m)
            kept.append(entry)
    values["volumes"], values["raw_volumes"] = tuple(mounts), tuple(kept)
    values["env_files"] = tuple(read("env_file", syntax.env_files) or ())
    values["environment"] = read("environment", syntax.mapping, "environment") or {}
    values["labels"] = read("labels", syntax.mapping, "labels") or {}
    values["secrets"] = tuple(read("secrets", syntax.mounted_names, "secrets") or ())
    values["configs"] = tuple(read("configs", syntax.mounted_names, "configs") or ())
    values["command"] = read("command", syntax.command)
    health = spec.get("healthcheck")
    values["healthcheck"] = (isinstance(health, dict) and not health.get("disable")
                             and health.get("test") not in (None, ["NONE"], "NONE", []))
    deploy: dict[str, Any] = spec["deploy"] if isinstance(spec.get("deploy"), dict) else {}
    replicas = deploy.get("replicas", spec.get("scale"))
    values["replicas"] = replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else None
    swarm = [k for k in SWARM_ONLY if k in deploy]
    if deploy.get("mode") == "global":
        swarm.append("mode: global")
    values["swarm_keys"] = tuple(swarm)
    values["networks"] = tuple(read("networks", syntax.names, "networks") or ())
    nets = spec.get("networks")
    values["static_ips"] = tuple(str(n[k]) for n in (nets.values() if isinstance(nets, dict) else ())
                                 if isinstance(n, dict) for k in ("ipv4_address", "ipv6_address") if n.get(k))
    return ComposeService(name, **values)


def _build(value: Any, key: str, where: str, problems: list[Problem]) -> Build | None:
    if value is None:
        return None
    if isinstance(value, str):
        return Build(value)
    if not isinstance(value, dict):
        _problem(problems, where, key, "`build:` is a context path or a mapping with `context`, `dockerfile`, `target`, `args`.")
        return None
    try:
        args = syntax.mapping(value.get("args"), "build.args")
    except ComposeSyntaxError as exc:
        _problem(problems, where, f"{key}.args", f"{exc}.")
        args = {}
    dockerfile = value.get("dockerfile")
    target = value.get("target")
    return Build(syntax.scalar(value.get("context", ".")), syntax.scalar(dockerfile) if dockerfile else None,
                 "dockerfile_inline" in value, syntax.scalar(target) if target else None, args)


def parse_top_level(kind: str, value: Any, where: str, problems: list[Problem]) -> dict[str, TopLevel]:
    """Top-level `secrets:` or `configs:`."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        _problem(problems, where, kind, f"top-level `{kind}:` is a mapping of names to `{{file: PATH}}`, "
                 "`{environment: VAR}` or `{external: true}`.")
        return {}
    out = {}
    for name, spec in value.items():
        name = str(name)
        spec = spec if isinstance(spec, dict) else {}
        file = spec.get("file")
        env = spec.get("environment")
        out[name] = TopLevel(name, syntax.scalar(file) if file is not None else None,
                             syntax.scalar(env) if env is not None else None, bool(spec.get("external")))
    return out
