"""Switching a reverse proxy explicitly, and confirming through its API that it now routes where we said.

Traefik: a file-provider file per service, replaced atomically (write, then rename) in a directory the proxy
watches; confirmed by reading the service's servers from Traefik's API. Caddy: the whole config posted to its
admin API (`/load`, a graceful reload); confirmed by reading the route back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import yaml

from . import httpapi
from .config import Proxy, Route
from .errors import DeployFailed
from .executors.base import Executor


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


def caddy_config(proxy: Proxy, upstreams: Mapping[str, list[str]]) -> dict[str, Any]:
    """Caddy's whole JSON config: one route per service (longest path first), admin API kept reachable."""
    routes = []
    for service in sorted(upstreams, key=lambda s: len(proxy.routes[s].path), reverse=True):
        route = proxy.routes[service]
        match: dict[str, Any] = {}
        if route.path != "/":
            prefix = route.path.rstrip("/")
            match["path"] = [prefix, prefix + "/*"]
        if route.host:
            match["host"] = [route.host]
        entry: dict[str, Any] = {
            "@id": f"shipline-{service}",
            "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": e} for e in upstreams[service]]}],
            "terminal": True,
        }
        if match:
            entry["match"] = [match]
        routes.append(entry)
    return {
        "admin": {"listen": proxy.admin_listen},
        "apps": {"http": {"servers": {"shipline": {"listen": proxy.listen, "routes": routes}}}},
    }


def caddy_upstreams(config: Any) -> dict[str, list[str]]:
    """Inverse of caddy_config: service -> upstream dials, from a config read back from Caddy."""
    out: dict[str, list[str]] = {}
    try:
        routes = config["apps"]["http"]["servers"]["shipline"]["routes"]
    except (KeyError, TypeError):
        return out
    for route in routes or []:
        rid = str(route.get("@id", ""))
        if rid.startswith("shipline-"):
            ups = route.get("handle", [{}])[0].get("upstreams", [])
            out[rid.removeprefix("shipline-")] = [str(u.get("dial")) for u in ups]
    return out


class ProxyDriver(Protocol):
    def switch(self, service: str, endpoints: list[str]) -> None:
        """Route the service to exactly these endpoints, and return only once the proxy confirms it."""
        ...


def _confirm(what: str, timeout: float, check: Callable[[], str | None],
             clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll `check` (None = confirmed, else what it saw) until the deadline."""
    deadline = clock() + timeout
    while True:
        try:
            seen = check()
        except DeployFailed as exc:  # the API restarting under a reload: ask again until the deadline
            seen = exc.message
        if seen is None:
            return
        if clock() >= deadline:
            raise DeployFailed(f"the proxy did not confirm {what} within {timeout:g}s (it reports {seen})")
        sleep(0.1)


class TraefikDriver:
    def __init__(self, ex: Executor, proxy: Proxy, app: str, config_dir: str) -> None:
        self.ex, self.proxy, self.app, self.dir = ex, proxy, app, config_dir

    def switch(self, service: str, endpoints: list[str]) -> None:
        text = traefik_dynamic(self.app, service, self.proxy.routes[service], endpoints, self.proxy)
        final = f"{self.dir}/{traefik_name(self.app, service)}.yml"
        tmp = f"{self.dir}/.{traefik_name(self.app, service)}.yml.tmp"
        self.ex.put(tmp, text.encode())
        self.ex.run(["mv", "-f", tmp, final]).check("switch the proxy")  # rename: Traefik never sees half a file
        want = {f"http://{e}" for e in endpoints}

        def check() -> str | None:
            status, body = httpapi.request(self.ex, self.proxy.api, "GET",
                                           f"/api/http/services/{traefik_name(self.app, service)}@file")
            if status != 200 or not isinstance(body, dict):
                return f"HTTP {status}"
            servers = {s.get("url") for s in body.get("loadBalancer", {}).get("servers", [])}
            return None if servers == want else f"servers {sorted(s for s in servers if s)}"

        _confirm(f"{service} -> {', '.join(endpoints)}", self.proxy.switch_timeout, check)


class CaddyDriver:
    def __init__(self, ex: Executor, proxy: Proxy) -> None:
        self.ex, self.proxy = ex, proxy
        self._upstreams: dict[str, list[str]] | None = None

    def _current(self) -> dict[str, list[str]]:
        if self._upstreams is None:
            status, body = httpapi.request(self.ex, self.proxy.api, "GET", "/config/")
            self._upstreams = {k: v for k, v in caddy_upstreams(body if status == 200 else None).items()
                               if k in self.proxy.routes}
        return self._upstreams

    def switch(self, service: str, endpoints: list[str]) -> None:
        upstreams = {**self._current(), service: endpoints}
        try:
            status, body = httpapi.request(self.ex, self.proxy.api, "POST", "/load", caddy_config(self.proxy, upstreams))
        except DeployFailed:
            status, body = 0, None  # Caddy may drop the answer while reloading; the check below tells
        if status not in (0, 200):
            raise DeployFailed(f"Caddy refused the new routes: HTTP {status} {str(body)[:300]}")
        self._upstreams = upstreams

        def check() -> str | None:
            st, cfg = httpapi.request(self.ex, self.proxy.api, "GET", "/config/")
            seen = caddy_upstreams(cfg if st == 200 else None).get(service)
            return None if seen == endpoints else f"upstreams {seen}"

        _confirm(f"{service} -> {', '.join(endpoints)}", self.proxy.switch_timeout, check)


def driver(ex: Executor, proxy: Proxy, app: str, config_dir: str) -> ProxyDriver:
    return TraefikDriver(ex, proxy, app, config_dir) if proxy.type == "traefik" else CaddyDriver(ex, proxy)
