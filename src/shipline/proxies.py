"""Switching a reverse proxy explicitly, and confirming through its API that it now routes where we said.

Both read files shipline replaces atomically (write, then rename) in a directory mounted into the proxy:
Traefik's file provider watches it, and the switch is confirmed by reading the service's servers from
Traefik's API. Caddy's routes (loaded once, by `caddy reload` run inside its container against its admin API
on the container's loopback) dial `{file.PATH}` upstreams that it evaluates per request, and the switch is
confirmed by reading that file inside the proxy's container.
Neither reloads the proxy for a switch, so no client connection is closed by it.
"""

from __future__ import annotations

import json
import posixpath
import time
from collections.abc import Callable
from typing import Any, Protocol

import yaml

from . import docker_commands as dc
from . import httpapi
from .config import Proxy, Route
from .errors import DeployFailed
from .executors.base import Executor
from .traefik_labels import LabelRouting


def traefik_name(app: str, service: str) -> str:
    return f"{app}-{service}"


def traefik_rule(route: Route) -> str:
    path = f"PathPrefix(`{route.path}`)"
    return f"Host(`{route.host}`) && {path}" if route.host else path


def traefik_dynamic(app: str, service: str, route: Route, endpoints: list[str], proxy: Proxy) -> str:
    """File-provider config routing `route` to exactly `endpoints` (host:port)."""
    name = traefik_name(app, service)
    router: dict[str, Any] = {"rule": traefik_rule(route), "service": name, "entryPoints": [proxy.entrypoint]}
    if proxy.tls:
        router["tls"] = {}
    servers = [{"url": f"http://{e}"} for e in endpoints]
    doc = {"http": {"routers": {name: router}, "services": {name: {"loadBalancer": {"servers": servers}}}}}
    return yaml.safe_dump(doc, sort_keys=False)


def caddy_upstream_file(app: str, service: str) -> str:
    return f"{app}-{service}.upstream"


def caddy_config_file(app: str) -> str:
    return f"{app}.caddy.json"


def caddy_config(proxy: Proxy, app: str) -> dict[str, Any]:
    """Caddy's whole JSON config: one route per service (longest path first), admin API kept reachable.

    Each upstream is `{file.PATH}`, a placeholder Caddy evaluates per request: switching is then an
    atomic file replace, not a config reload (a reload closes idle client connections, and a request
    racing that close fails).
    """
    routes = []
    for service in sorted(proxy.routes, key=lambda s: len(proxy.routes[s].path), reverse=True):
        route = proxy.routes[service]
        match: dict[str, Any] = {}
        if route.path != "/":
            prefix = route.path.rstrip("/")
            match["path"] = [prefix, prefix + "/*"]
        if route.host:
            match["host"] = [route.host]
        dial = f"{{file.{proxy.files_mount}/{caddy_upstream_file(app, service)}}}"
        entry: dict[str, Any] = {
            "@id": f"shipline-{service}",
            "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": dial}]}],
            "terminal": True,
        }
        if match:
            entry["match"] = [match]
        routes.append(entry)
    return {
        "admin": {"listen": proxy.admin_listen},
        "apps": {"http": {"servers": {"shipline": {"listen": proxy.listen, "routes": routes}}}},
    }


class ProxyDriver(Protocol):
    def switch(self, service: str, endpoints: list[str]) -> None:
        """Route the service to exactly these endpoints, and return only once the proxy confirms it."""
        ...

    def routed(self, service: str) -> list[str] | None:
        """The endpoints the proxy's route file sends the service to (None: no route file yet)."""
        ...


def put_watched(ex: Executor, path: str, data: bytes) -> None:
    """A file in Traefik's watched directory, its temporary file written in the parent directory: Traefik sees
    only the rename. A temporary file beside it makes two reloads, the second one delayed by the provider's
    throttle (measured: a switch confirmed in 0.36 s instead of 0.05 s)."""
    ex.put(path, data, tmp_dir=posixpath.dirname(posixpath.dirname(path)))


def _confirm(what: str, timeout: float, check: Callable[[], str | None],
             clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll `check` (None = confirmed, else what it saw) until the deadline: every 0.02 s in the first second
    (Traefik applies a file in about that; each poll is one request through the open SSH connection), then
    every 0.1 s."""
    start = clock()
    deadline = start + timeout
    while True:
        try:
            seen = check()
        except DeployFailed as exc:  # the API restarting under a reload: ask again until the deadline
            seen = exc.message
        if seen is None:
            return
        if clock() >= deadline:
            raise DeployFailed(f"the proxy did not confirm {what} within {timeout:g}s (it reports {seen})")
        sleep(0.02 if clock() - start < 1 else 0.1)


class TraefikDriver:
    def __init__(self, ex: Executor, proxy: Proxy, app: str, config_dir: str,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        assert proxy.api is not None  # required for Traefik by the config schema
        self.ex, self.proxy, self.app, self.dir, self.sleep, self.api = ex, proxy, app, config_dir, sleep, proxy.api

    def switch(self, service: str, endpoints: list[str]) -> None:
        text = traefik_dynamic(self.app, service, self.proxy.routes[service], endpoints, self.proxy)
        put_watched(self.ex, self._file(service), text.encode())
        want = {f"http://{e}" for e in endpoints}

        def check() -> str | None:
            status, body = httpapi.request(self.ex, self.api, "GET",
                                           f"/api/http/services/{traefik_name(self.app, service)}@file")
            if status != 200 or not isinstance(body, dict):
                return f"HTTP {status}"
            servers = {s.get("url") for s in body.get("loadBalancer", {}).get("servers", [])}
            return None if servers == want else f"servers {sorted(s for s in servers if s)}"

        _confirm(f"{service} -> {', '.join(endpoints)}", self.proxy.switch_timeout, check, sleep=self.sleep)

    def _file(self, service: str) -> str:
        return f"{self.dir}/{traefik_name(self.app, service)}.yml"

    def forget(self, service: str) -> None:
        """No route for `service` any more (undoing its first switch: nothing served it before)."""
        self.ex.run(["rm", "-f", self._file(service)]).check(f"remove the route file of {service}")

    def routed(self, service: str) -> list[str] | None:
        raw = self.ex.read(self._file(service))
        if raw is None:
            return None
        try:
            doc = yaml.safe_load(raw)
            servers = doc["http"]["services"][traefik_name(self.app, service)]["loadBalancer"]["servers"]
            return [str(s["url"]).removeprefix("http://") for s in servers]
        except (yaml.YAMLError, KeyError, TypeError):
            return []


class CaddyDriver:
    """Routes load once (and again only when they change); a switch rewrites one upstream file.

    The admin API is never published: `caddy reload` runs inside the proxy's container, where the API listens
    on loopback or a unix socket, and loads the config file shipline put in the mounted directory. Caddy
    itself skips a load whose config is unchanged, so this reloads nothing on an ordinary deploy.
    """

    def __init__(self, ex: Executor, proxy: Proxy, app: str, config_dir: str, container: Callable[[], str],
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.ex, self.proxy, self.app, self.dir, self.container, self.sleep = ex, proxy, app, config_dir, container, sleep
        self._loaded = False

    def _ensure_routes(self) -> None:
        if self._loaded:
            return
        name = caddy_config_file(self.app)
        self.ex.put(f"{self.dir}/{name}", json.dumps(caddy_config(self.proxy, self.app), indent=2).encode())
        argv = ["docker", "exec", self.container(), "caddy", "reload", "--config", f"{self.proxy.files_mount}/{name}",
                "--address", self.proxy.admin_listen]

        def loaded() -> str | None:
            # Succeeds once the routes are live; asked again if Caddy dropped the answer while it reloaded.
            res = self.ex.run(argv)
            return None if res.ok else " ".join(res.tail(3).split())

        _confirm("its routes", self.proxy.switch_timeout, loaded, sleep=self.sleep)
        self._loaded = True

    def switch(self, service: str, endpoints: list[str]) -> None:
        if len(endpoints) != 1:
            raise DeployFailed(f"Caddy switching routes each service to one container; {service} has {len(endpoints)}")
        name = caddy_upstream_file(self.app, service)
        self.ex.put(f"{self.dir}/{name}", endpoints[0].encode())
        self._ensure_routes()
        inside = f"{self.proxy.files_mount}/{name}"

        def check() -> str | None:
            # What Caddy will read for the next request, read inside the proxy's own container.
            res = self.ex.run(["docker", "exec", self.container(), "cat", inside])
            return None if res.ok and res.output.strip() == endpoints[0] else f"{inside} = {res.output.strip()!r}"

        _confirm(f"{service} -> {endpoints[0]}", self.proxy.switch_timeout, check, sleep=self.sleep)

    def routed(self, service: str) -> list[str] | None:
        raw = self.ex.read(f"{self.dir}/{caddy_upstream_file(self.app, service)}")
        return None if raw is None else [raw.decode().strip()] if raw.strip() else []


class TraefikLabelsDriver:
    """Traefik routes written as docker labels, moved into shipline's files (`traefik_labels`): a switch
    writes the service's routers and services with exactly the new servers; the labelled middlewares go
    first into a file of their own, since routers of several services may share them. Confirmed through the
    API that shipline adds to Traefik's command, read at the proxy container's address on the host."""

    def __init__(self, ex: Executor, routing: LabelRouting, app: str, config_dir: str,
                 container: Callable[[], str], sleep: Callable[[float], None] = time.sleep) -> None:
        self.ex, self.routing, self.app, self.dir, self.container = ex, routing, app, config_dir, container
        self.sleep = sleep
        self._api: str | None = None
        self._middlewares = False

    def api(self) -> str:
        if self._api is None:
            raw = self.ex.query(dc.inspect_networks(self.container()), "inspect the proxy's networks")
            try:
                networks = json.loads(raw)
            except ValueError:
                networks = {}
            addresses = [n.get("IPAddress") for _, n in sorted(networks.items()) if isinstance(n, dict) and n.get("IPAddress")]
            if not addresses:
                raise DeployFailed(f"the proxy {self.routing.service!r} has no network address to reach its API at")
            self._api = f"{addresses[0]}:{self.routing.api_port}"
        return self._api

    def _file(self, name: str) -> str:
        return f"{self.dir}/{traefik_name(self.app, name)}.yml"

    def switch(self, service: str, endpoints: list[str]) -> None:
        routes = self.routing.routes[service]
        if not self._middlewares:
            doc = self.routing.middlewares_document()
            if doc:
                put_watched(self.ex, self._file("middlewares"), yaml.safe_dump(doc, sort_keys=False).encode())
            self._middlewares = True
        addresses = [e.rsplit(":", 1)[0] for e in endpoints]
        put_watched(self.ex, self._file(service), yaml.safe_dump(routes.document(addresses), sort_keys=False).encode())

        def check() -> str | None:
            for name, (port, scheme) in routes.backends.items():
                status, body = httpapi.request(self.ex, self.api(), "GET", f"/api/http/services/{name}@file")
                if status != 200 or not isinstance(body, dict):
                    return f"HTTP {status} for {name}@file"
                servers = {s.get("url") for s in body.get("loadBalancer", {}).get("servers", [])}
                want = {f"{scheme}://{a}:{port}" for a in addresses}
                if servers != want:
                    return f"{name}@file servers {sorted(s for s in servers if s)}"
            return None

        _confirm(f"{service} -> {', '.join(addresses)}", self.routing.switch_timeout, check, sleep=self.sleep)

    def routed(self, service: str) -> list[str] | None:
        raw = self.ex.read(self._file(service))
        if raw is None:
            return None
        routes = self.routing.routes[service]
        name = next(iter(routes.backends))
        try:
            lb = next(v for k, v in yaml.safe_load(raw)["http"]["services"][name].items() if k.lower() == "loadbalancer")
            urls = [str(s["url"]).split("://", 1)[-1] for s in lb["servers"]]
        except (yaml.YAMLError, KeyError, TypeError, StopIteration):
            return []
        port = routes.backends[name][0]
        return [f"{u.rsplit(':', 1)[0]}:{port}" for u in urls]


def driver(ex: Executor, proxy: Proxy | LabelRouting, app: str, config_dir: str,
           container: Callable[[], str], sleep: Callable[[float], None] = time.sleep) -> ProxyDriver:
    if isinstance(proxy, LabelRouting):
        return TraefikLabelsDriver(ex, proxy, app, config_dir, container, sleep)
    if proxy.type == "traefik":
        return TraefikDriver(ex, proxy, app, config_dir, sleep)
    return CaddyDriver(ex, proxy, app, config_dir, container, sleep)
