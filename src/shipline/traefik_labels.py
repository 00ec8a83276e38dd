"""Traefik configured the usual way in a Compose file: the docker provider, and routes as container labels.

Detection only reads the Compose model. Labels map one to one onto Traefik's dynamic configuration
(`traefik.http.routers.api.rule=...` is `http.routers.api.rule`), which is what lets shipline move a
service's routes into its own file-provider files and switch them explicitly during a rollout.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from .compose import ComposeProject, ComposeService

_IMAGE = re.compile(r"(^|/)traefik(:|@|$)")


@dataclass(frozen=True)
class TraefikSetup:
    service: str
    flags: dict[str, str]  # lower-cased flag name (without `--`) -> value ("true" for a bare flag)
    command: tuple[str, ...]  # as written, one argument per item
    labelled: tuple[str, ...]  # services that route with traefik labels

    @property
    def docker_provider(self) -> bool:
        return _true(self.flags.get("providers.docker"))

    @property
    def file_provider(self) -> bool:
        return any(k.startswith("providers.file.") for k in self.flags)

    @property
    def exposed_by_default(self) -> bool:
        return self.flags.get("providers.docker.exposedbydefault", "true").lower() != "false"

    @property
    def configured_by_flags(self) -> bool:
        """Traefik reads flags *or* a static file (never both): shipline can only add flags to the first."""
        return bool(self.command)


def _true(value: str | None) -> bool:
    return value is not None and value.lower() in ("", "true")


def _flags(command: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for arg in command:
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            out[name.lower()] = value if eq else "true"
    return out


def routes_with_labels(svc: ComposeService) -> bool:
    return any(k.lower().startswith(("traefik.http.", "traefik.tcp.")) for k in svc.labels) or \
        (svc.labels.get("traefik.enable") or "").lower() == "true"


def find_traefik(compose: ComposeProject, active: list[str] | None = None) -> TraefikSetup | None:
    """The Traefik service, its flags, and the services routed by its docker provider's labels."""
    names = active if active is not None else list(compose.services)
    for name in names:
        svc = compose.services[name]
        if not svc.image or not _IMAGE.search(svc.image):
            continue
        raw = svc.command
        try:
            command = tuple(shlex.split(raw) if isinstance(raw, str) else raw or ())
        except ValueError:
            command = ()  # unbalanced quotes: Compose would refuse it too
        flags = _flags(command) or {k[len("TRAEFIK_"):].lower().replace("_", "."): v or "true"
                                    for k, v in svc.environment.items() if k.upper().startswith("TRAEFIK_")}
        labelled = tuple(n for n in names if n != name and routes_with_labels(compose.services[n]))
        return TraefikSetup(name, flags, command, labelled)
    return None


# --- labels -> file-provider configuration ----------------------------------------------------------------

SECTIONS = {"routers": "routers", "services": "services", "middlewares": "middlewares",
            "serverstransports": "serversTransports"}
_INDEX = re.compile(r"^(?P<name>[^\[\]]*)\[(?P<i>\d+)\]$")


@dataclass(frozen=True)
class LabelRoutes:
    """What one Compose service's labels declare, in Traefik's dynamic-configuration shape.

    `http` holds the routers and services as labelled (key case kept: Traefik matches keys without regard
    to case), with references made valid from the file provider; `backends` names each Traefik service
    that routes to this Compose service's containers, with the port and scheme to reach them.
    """

    service: str
    http: dict[str, dict[str, Any]]
    backends: dict[str, tuple[int, str]]  # traefik service name -> (container port, scheme)
    middlewares: dict[str, Any]  # the middlewares its labels define (shipline writes them all in one file)
    network: str | None = None  # `traefik.docker.network`: the network to reach the containers on

    def document(self, addresses: list[str]) -> dict[str, Any]:
        """The file-provider document routing to exactly these container addresses."""
        services = {}
        for name, spec in self.http.get("services", {}).items():
            port, scheme = self.backends[name]
            lb_key = next((k for k in spec if k.lower() == "loadbalancer"), "loadBalancer")
            lb = {k: v for k, v in (spec.get(lb_key) or {}).items() if k.lower() != "server"}
            lb["servers"] = [{"url": f"{scheme}://{_host(a)}:{port}"} for a in addresses]
            services[name] = {**{k: v for k, v in spec.items() if k != lb_key}, lb_key: lb}
        return {"http": {"routers": self.http.get("routers", {}), "services": services}}


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


class LabelError(Exception):
    """Labels shipline cannot move into its own files; the service keeps Traefik's docker provider."""


def _tree(labels: dict[str, str | None], prefix: str) -> dict[str, Any]:
    """`traefik.http.routers.api.rule=...` labels as nested mappings below `prefix` (`traefik.http.`)."""
    root: dict[str, Any] = {}
    for key, value in labels.items():
        if not key.lower().startswith(prefix):
            continue
        node: Any = root
        parts = key[len(prefix):].split(".")
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            m = _INDEX.match(part)
            name, index = (m.group("name"), int(m.group("i"))) if m else (part, None)
            if not isinstance(node, dict):
                raise LabelError(f"label {key} sets options below a value")
            if index is None:
                if last:
                    if isinstance(node.get(name), dict | list):
                        if (value or "true").lower() != "true":
                            raise LabelError(f"label {key} sets a value where other labels set options")
                        continue  # `tls=true` next to `tls.certresolver=...`: the options say it all
                    node[name] = value if value is not None else ""
                    continue
                child = node.get(name)
                if child is None or (isinstance(child, str) and child.lower() in ("true", "")):
                    child = node[name] = {}
                node = child
            else:
                items = node.setdefault(name, [])
                if not isinstance(items, list):
                    raise LabelError(f"label {key} mixes a list and a value")
                if index > 100:
                    raise LabelError(f"label {key} has an index above 100")
                while len(items) <= index:
                    items.append("" if last else {})
                if last:
                    items[index] = value if value is not None else ""
                else:
                    node = items[index]
    return root


def _get(mapping: Any, key: str) -> Any:
    """A key of labelled configuration, whatever its case."""
    if not isinstance(mapping, dict):
        return None
    return next((v for k, v in mapping.items() if k.lower() == key), None)


def _container_port(svc: ComposeService) -> int | None:
    """The port Traefik would pick without a label: the single one the service exposes."""
    ports = {p.split("/")[0] for p in svc.expose} | {p.target for p in svc.ports}
    if len(ports) == 1:
        only = next(iter(ports))
        return int(only) if only.isdigit() else None
    return None


def label_definitions(svc: ComposeService) -> set[str]:
    """Names of the middlewares and services a container's labels define (what references may point to)."""
    out: set[str] = set()
    for key in svc.labels:
        parts = key.split(".")
        if len(parts) > 3 and key.lower().startswith(("traefik.http.middlewares.", "traefik.http.services.")):
            out.add(parts[3])
    return out


def translate(svc: ComposeService, moved: set[str]) -> LabelRoutes:
    """One service's HTTP labels as file-provider configuration; raises LabelError when they cannot move.

    `moved`: the middleware and service names defined by every service whose labels move to shipline's
    files; other names stay with the docker provider, so references to them get `@docker`.
    """
    labels = svc.labels
    if any(k.lower().startswith(("traefik.tcp.", "traefik.udp.")) for k in labels):
        raise LabelError("it has TCP or UDP routes, which shipline does not switch")
    tree = _tree(labels, "traefik.http.")
    unknown = [k for k in tree if k.lower() not in SECTIONS]
    if unknown:
        raise LabelError(f"its label section traefik.http.{unknown[0]} is not one Traefik knows")
    http: dict[str, Any] = {SECTIONS[k.lower()]: v for k, v in tree.items()}
    if any(not isinstance(v, dict) for v in http.values()):
        raise LabelError("a traefik.http section holds a value instead of named entries")
    routers: dict[str, Any] = http.setdefault("routers", {})
    services: dict[str, Any] = http.setdefault("services", {})
    middlewares: dict[str, Any] = http.pop("middlewares", {})
    if not routers:
        raise LabelError("its labels define no router (Traefik's default rule depends on its own settings); "
                         "add a `traefik.http.routers.NAME.rule` label")
    if not services:
        services[svc.name] = {"loadBalancer": {}}
    backends: dict[str, tuple[int, str]] = {}
    for name, spec in services.items():
        server = _get(_get(spec, "loadbalancer"), "server")
        port = _get(server, "port") or _container_port(svc)
        scheme = _get(server, "scheme") or "http"
        if port is None or not str(port).isdigit():
            raise LabelError(f"the port of Traefik service {name!r} is not labelled; add "
                             f"`traefik.http.services.{name}.loadbalancer.server.port`")
        backends[name] = (int(port), str(scheme))
    for name, router in routers.items():
        if not isinstance(router, dict) or _get(router, "rule") is None:
            raise LabelError(f"router {name!r} has no rule")
        service_key = next((k for k in router if k.lower() == "service"), None)
        if service_key is None:
            if len(services) != 1:
                raise LabelError(f"router {name!r} names no service, and the labels define several")
            router["service"] = next(iter(services))
        else:
            router[service_key] = _reference(str(router[service_key]), moved | set(services))
        mw_key = next((k for k in router if k.lower() == "middlewares"), None)
        if mw_key is not None:
            refs = [m.strip() for m in str(router[mw_key]).split(",") if m.strip()]
            router[mw_key] = ",".join(_reference(m, moved | set(middlewares)) for m in refs)
    return LabelRoutes(svc.name, http, backends, middlewares, labels.get("traefik.docker.network") or None)


def _reference(ref: str, moved: set[str]) -> str:
    """A reference made valid from the file provider: a moved definition loses `@docker`; one that stays
    with the docker provider gains it (unqualified, it would now mean the file provider's)."""
    name, at, provider = ref.partition("@")
    if at:
        return name if provider == "docker" and name in moved else ref
    return name if name in moved else f"{name}@docker"


# --- the plan: which services shipline switches, and what the proxy needs for it ----------------------------

FILES_MOUNT = "/etc/shipline/traefik"  # where the proxy container sees shipline's route files
API_PORT = 8080


@dataclass(frozen=True)
class LabelRouting:
    """Traefik's docker-provider routes taken over by shipline: moved into its files, switched explicitly."""

    service: str  # the Compose service running Traefik
    command: tuple[str, ...]  # Traefik's command with the file provider and the API added
    api_port: int  # the API inside the proxy's container, read to confirm a switch
    routes: dict[str, LabelRoutes]  # Compose service -> its routes, switched by shipline
    kept: dict[str, str]  # labelled services left to the docker provider, and why
    switch_timeout: float = 15  # how long Traefik may take to confirm a switch
    type: str = "traefik-labels"

    def middlewares_document(self) -> dict[str, Any]:
        """Every moved middleware, in one file written before any switch (routers may share them)."""
        merged: dict[str, Any] = {}
        for routes in self.routes.values():
            merged.update(routes.middlewares)
        return {"http": {"middlewares": merged}} if merged else {}

    def override(self) -> dict[str, Any]:
        """Compose override: the proxy reads shipline's files; the docker provider leaves moved containers alone."""
        services: dict[str, Any] = {self.service: {
            "command": list(self.command),
            "volumes": [{"type": "bind", "source": "${SHIPLINE_PROXY_DIR:?set by shipline}", "target": FILES_MOUNT,
                         "read_only": True}]}}
        for name in self.routes:
            services[name] = {"labels": {"traefik.enable": "false"}}
        return services


def label_routing(compose: ComposeProject, active: list[str]) -> LabelRouting | None:
    """How shipline takes over the routes of a Traefik that reads docker labels; None when none does."""
    setup = find_traefik(compose, active)
    if setup is None or not setup.docker_provider or not setup.labelled:
        return None
    why_not = None
    if not setup.configured_by_flags:
        why_not = (f"{setup.service} reads its settings from a file or the environment, and shipline adds its "
                   "file provider as command flags; configure Traefik with `command:` flags, or describe the "
                   "routes in shipline.yml `proxy:`")
    elif setup.file_provider:
        why_not = (f"{setup.service} already has a file provider (Traefik allows one), so shipline cannot add its "
                   "own; describe the routes in shipline.yml `proxy:` instead")
    if why_not:
        return LabelRouting(setup.service, setup.command, 0, {}, {n: why_not for n in setup.labelled})
    services = {n: compose.services[n] for n in setup.labelled}
    kept: dict[str, str] = {}
    routes: dict[str, LabelRoutes] = {}
    for _ in range(2):  # a service that cannot move keeps its definitions with the docker provider
        moved = {d for n, svc in services.items() if n not in kept for d in label_definitions(svc)}
        routes = {}
        for name, svc in services.items():
            if name in kept:
                continue
            try:
                routes[name] = translate(svc, moved)
            except LabelError as exc:
                kept[name] = f"its Traefik labels stay with the docker provider: {exc}"
    command, api_port = _command(setup)
    return LabelRouting(setup.service, command, api_port, routes, kept)


def _command(setup: TraefikSetup) -> tuple[tuple[str, ...], int]:
    """Traefik's command with shipline's file provider (watched) and the API, which confirms switches."""
    flags = setup.flags
    extra = [f"--providers.file.directory={FILES_MOUNT}", "--providers.file.watch=true"]
    if not _true(flags.get("api.insecure")):
        extra.append("--api.insecure=true")
    address = flags.get("entrypoints.traefik.address")
    if address is None:
        taken = {v.rsplit(":", 1)[-1] for k, v in flags.items() if k.startswith("entrypoints.") and k.endswith(".address")}
        port = next(p for p in (API_PORT, 18080, 28080) if str(p) not in taken)
        extra.append(f"--entrypoints.traefik.address=:{port}")
    else:
        written = address.rsplit(":", 1)[-1].split("/")[0]
        port = int(written) if written.isdigit() else API_PORT
    return (*setup.command, *extra), port
