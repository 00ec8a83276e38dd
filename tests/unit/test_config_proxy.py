"""The proxy section and rollout strategies of shipline.yml."""

from pathlib import Path

import pytest

from shipline.errors import ConfigError
from shipline.project import load_project

from .projects import PROXY, SHIPLINE, write_project


def test_routed_services_default_to_zero_downtime_and_the_proxy_rolls_first(tmp_path: Path) -> None:
    project = load_project(write_project(tmp_path, SHIPLINE + PROXY), env={})
    assert [project.rollouts[s].strategy for s in ("backend", "frontend", "db", "proxy")] == [
        "zero-downtime", "zero-downtime", "recreate", "recreate"]
    assert project.rollout_order()[0] == "proxy"


def project_text(proxy: str = PROXY, services: str = "    backend: {health_timeout: 30}\n") -> str:
    """SHIPLINE with its `deploy.services` replaced and a proxy section appended."""
    return SHIPLINE.replace("    backend: {health_timeout: 30}\n", services) + proxy


@pytest.mark.parametrize(("text", "key", "words"), [
    (project_text(PROXY.replace("service: proxy", "service: traefik")), "proxy.service", "no service 'traefik'"),
    (project_text(PROXY.replace("frontend: {path: /, port: 8080}", "web: {path: /, port: 8080}")),
     "proxy.routes.web", "no service 'web'"),
    (project_text(PROXY.replace("port: 8000", "port: 0")), "proxy.routes.backend.port", "greater than or equal to 1"),
    (project_text(PROXY.replace("type: traefik", "type: nginx")), "proxy.type", "traefik"),
    (project_text(PROXY.replace("api: 127.0.0.1:8081", "api: localhost")), "proxy.api", "expected form"),
    (project_text(PROXY.replace("  api: 127.0.0.1:8081\n", "")), "proxy", "Traefik needs `api`"),
    (project_text(PROXY.replace("type: traefik", "type: caddy")), "proxy", "Caddy takes no `api`"),
    (project_text(PROXY.replace("type: traefik", "type: caddy").replace("  api: 127.0.0.1:8081\n", "  admin_listen: 0.0.0.0:2019\n")),
     "proxy.admin_listen", "shared network could reload or stop the proxy"),
    (project_text("", "    db: {strategy: zero-downtime}\n"), "deploy.services.db.strategy", "start-first"),
    (project_text(PROXY, "    proxy: {strategy: start-first}\n"), "deploy.services.proxy.strategy", "recreate"),
    (project_text(PROXY, "    backend: {strategy: blue-green}\n"), "deploy.services.backend.strategy", "zero-downtime"),
])
def test_proxy_and_strategy_mistakes_name_the_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_project(write_project(tmp_path, text), env={})
    message = str(info.value)
    assert key in message and words in message, message


def test_caddy_admin_api_stays_inside_its_container_by_default(tmp_path: Path) -> None:
    text = project_text(PROXY.replace("type: traefik", "type: caddy").replace("  api: 127.0.0.1:8081\n", ""))
    proxy = load_project(write_project(tmp_path, text), env={}).config.proxy
    assert proxy is not None and proxy.admin_listen == "localhost:2019" and proxy.api is None
    socket = text.replace("  routes:", "  admin_listen: unix//run/caddy/admin.sock\n  routes:")
    proxy = load_project(write_project(tmp_path, socket), env={}).config.proxy
    assert proxy is not None and proxy.admin_listen == "unix//run/caddy/admin.sock"
