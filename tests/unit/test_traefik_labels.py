"""Traefik docker-provider labels: found, translated into file-provider configuration, or kept with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shipline.compose import ComposeProject, load_project
from shipline.project import load_project as load_shipline
from shipline.traefik_labels import FILES_MOUNT, find_traefik, label_routing

from .trees import MemoryTree

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "traefik-labels" / "docker-compose.prod.yml"
PROXY = """\
services:
  traefik:
    image: traefik:v3.1
    command: {command}
    labels: [traefik.http.middlewares.auth.basicauth.users=admin:$$apr1$$x]
"""


def compose(text: str) -> ComposeProject:
    project = load_project(["compose.yaml"], MemoryTree({"compose.yaml": text}), {"COMPOSE_PROJECT_NAME": "shop"}.get)
    assert not project.problems, project.problems
    return project


def example() -> ComposeProject:
    return compose(EXAMPLE.read_text())


def test_finds_traefik_its_flags_and_the_labelled_services() -> None:
    setup = find_traefik(example())
    assert setup is not None
    assert (setup.service, setup.docker_provider, setup.file_provider, setup.labelled) == (
        "traefik", True, False, ("backend", "frontend"))
    assert setup.flags["providers.docker.network"] == "shop_web"


def test_example_routes_move_into_files() -> None:
    project = example()
    routing = label_routing(project, project.active())
    assert routing is not None and routing.kept == {}
    backend, frontend = routing.routes["backend"], routing.routes["frontend"]
    assert backend.backends == {"backend": (8000, "http")} and frontend.backends == {"frontend": (8080, "http")}
    assert backend.http["routers"]["backend"] == {
        "rule": "PathPrefix(`/api`)", "entrypoints": "websecure", "tls": "true", "priority": "100",
        "middlewares": "security-headers", "service": "backend"}
    assert routing.middlewares_document() == {"http": {"middlewares": {"security-headers": {"headers": {
        "contentTypeNosniff": "true", "customResponseHeaders": {"X-Served-By": "shipline-example"}}}}}}
    doc = backend.document(["172.18.0.5", "172.18.0.6"])
    assert doc["http"]["services"] == {"backend": {"loadbalancer": {"servers": [
        {"url": "http://172.18.0.5:8000"}, {"url": "http://172.18.0.6:8000"}]}}}
    assert "middlewares" not in doc["http"]


def test_override_adds_the_file_provider_and_hides_moved_containers_from_the_docker_provider() -> None:
    project = example()
    routing = label_routing(project, project.active())
    assert routing is not None
    override = routing.override()
    command = override["traefik"]["command"]
    assert command[: len(find_traefik(project).command)] == list(find_traefik(project).command)  # type: ignore[union-attr]
    assert command[-4:] == [f"--providers.file.directory={FILES_MOUNT}", "--providers.file.watch=true",
                            "--api.insecure=true", "--entrypoints.traefik.address=:8080"]
    assert routing.api_port == 8080
    assert override["traefik"]["volumes"] == [{"type": "bind", "source": "${SHIPLINE_PROXY_DIR:?set by shipline}",
                                               "target": FILES_MOUNT, "read_only": True}]
    assert override["backend"] == {"labels": {"traefik.enable": "false"}}
    yaml.safe_dump(override)  # plain data


def labelled(labels: str, command: str = "[--providers.docker, --entrypoints.web.address=:80]") -> ComposeProject:
    return compose(PROXY.format(command=command) + "  web:\n    image: shop/web\n    expose: ['3000']\n"
                   "    labels:\n" + "".join(f"      - {line}\n" for line in labels.strip().splitlines()))


def routing_of(labels: str, command: str = "[--providers.docker, --entrypoints.web.address=:80]") -> object:
    project = labelled(labels, command)
    return label_routing(project, project.active())


def test_references_to_definitions_that_stay_get_docker_and_moved_ones_lose_it() -> None:
    routing = routing_of("""
traefik.http.routers.web.rule=Host(`shop.example`)
traefik.http.routers.web.middlewares=auth, gzip@docker, ratelimit@file
traefik.http.middlewares.gzip.compress=true
""")
    web = routing.routes["web"]  # type: ignore[attr-defined]
    assert web.http["routers"]["web"]["middlewares"] == "auth@docker,gzip,ratelimit@file"
    assert web.backends == {"web": (3000, "http")}  # the one exposed port, as Traefik picks it
    assert web.http["routers"]["web"]["service"] == "web"


def test_tls_options_and_lists_keep_their_shape() -> None:
    routing = routing_of("""
traefik.http.routers.web.rule=Host(`shop.example`)
traefik.http.routers.web.tls=true
traefik.http.routers.web.tls.certresolver=le
traefik.http.routers.web.tls.domains[0].main=shop.example
traefik.http.routers.web.tls.domains[0].sans=www.shop.example
traefik.http.services.api.loadbalancer.server.port=3000
traefik.http.services.api.loadbalancer.server.scheme=https
traefik.http.services.api.loadbalancer.healthcheck.path=/health
""")
    web = routing.routes["web"]  # type: ignore[attr-defined]
    assert web.http["routers"]["web"]["tls"] == {"certresolver": "le", "domains": [{"main": "shop.example",
                                                                                    "sans": "www.shop.example"}]}
    assert web.document(["10.0.0.2"])["http"]["services"]["api"] == {"loadbalancer": {
        "healthcheck": {"path": "/health"}, "servers": [{"url": "https://10.0.0.2:3000"}]}}


@pytest.mark.parametrize(("labels", "reason"), [
    ("traefik.tcp.routers.pg.rule=HostSNI(`*`)\ntraefik.http.routers.web.rule=Path(`/`)", "TCP or UDP"),
    ("traefik.enable=true", "define no router"),
    ("traefik.http.routers.web.rule=Path(`/`)\ntraefik.http.services.a.loadbalancer.server.port=1\n"
     "traefik.http.services.b.loadbalancer.server.port=2", "names no service, and the labels define several"),
    ("traefik.http.routers.web.entrypoints=web", "has no rule"),
    ("traefik.http.routers.web.rule=Path(`/`)\ntraefik.http.nope.x=1", "traefik.http.nope is not one Traefik knows"),
])
def test_labels_that_cannot_move_stay_with_a_reason(labels: str, reason: str) -> None:
    routing = routing_of(labels)
    assert routing.routes == {}  # type: ignore[attr-defined]
    assert reason in routing.kept["web"], routing.kept  # type: ignore[attr-defined]


def test_no_port_is_a_reason() -> None:
    project = compose(PROXY.format(command="[--providers.docker]") +
                      "  web:\n    image: x\n    labels: ['traefik.http.routers.web.rule=Path(`/`)']\n")
    routing = label_routing(project, project.active())
    assert routing is not None and "loadbalancer.server.port" in routing.kept["web"]


@pytest.mark.parametrize(("command", "reason"), [
    ("[--providers.docker, --providers.file.directory=/conf]", "already has a file provider"),
    ("null", "reads its settings from a file"),
])
def test_traefik_setups_shipline_cannot_extend(command: str, reason: str) -> None:
    text = PROXY.format(command=command).replace("    labels: [traefik.http.middlewares.auth.basicauth.users=admin:$$apr1$$x]\n", "")
    if command == "null":
        text = text.replace("    command: null\n", "    environment: {TRAEFIK_PROVIDERS_DOCKER: 'true'}\n")
    project = compose(text + "  web:\n    image: x\n    labels: ['traefik.http.routers.web.rule=Path(`/`)']\n")
    routing = label_routing(project, project.active())
    assert routing is not None and reason in routing.kept["web"]


def test_api_entrypoint_avoids_a_port_in_use_and_keeps_the_users() -> None:
    project = labelled("traefik.http.routers.web.rule=Path(`/`)", "[--providers.docker, --entrypoints.web.address=:8080]")
    routing = label_routing(project, project.active())
    assert routing is not None and routing.api_port == 18080
    project = labelled("traefik.http.routers.web.rule=Path(`/`)",
                       "[--providers.docker, --api.insecure=true, --entrypoints.traefik.address=:9000]")
    routing = label_routing(project, project.active())
    assert routing is not None and routing.api_port == 9000
    assert routing.command[-2:] == (f"--providers.file.directory={FILES_MOUNT}", "--providers.file.watch=true")


def test_a_project_routed_by_labels_plans_zero_downtime_and_may_say_so(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "examples" / "traefik-labels").mkdir(parents=True)
    (root / ".git").mkdir()  # the repository root: the build contexts are in ../fullstack
    for name in ("backend", "frontend"):
        (root / "examples" / "fullstack" / name).mkdir(parents=True)
        (root / "examples" / "fullstack" / name / "Dockerfile").write_text("FROM scratch\n")
    (root / "examples" / "traefik-labels" / "docker-compose.prod.yml").write_text(EXAMPLE.read_text())
    shipline = (EXAMPLE.parent / "shipline.yml").read_text().replace(
        "    frontend: {drain: 1}", "    frontend: {drain: 1, strategy: zero-downtime}")
    (root / "examples" / "traefik-labels" / "shipline.yml").write_text(shipline)
    key = tmp_path / "key"
    key.write_text("k\n")
    project = load_shipline(root / "examples" / "traefik-labels" / "shipline.yml",
                            {"SHIPLINE_HOST_KEY": "SHA256:" + "A" * 43, "SHIPLINE_SSH_KEY": str(key)})
    assert project.labels is not None and project.rollout_order()[0] == "traefik"
    assert {n: r.strategy for n, r in project.rollouts.items()} == {
        "traefik": "recreate", "db": "recreate", "backend": "zero-downtime", "frontend": "zero-downtime"}
