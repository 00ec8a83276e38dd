"""Reading Compose files as Compose does: services, dependencies, profiles, one-shot jobs, singletons, problems."""

from __future__ import annotations

import pytest

from shipline.compose import ComposeCycle, ComposeProject, load_project

from .trees import MemoryTree

APP = """\
services:
  proxy:
    image: caddy:2
    depends_on: [frontend, backend]
  db:
    image: postgres:16
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U app"]
  backend:
    build: ./backend
    depends_on:
      db:
        condition: service_healthy
  frontend:
    build: ./frontend
    depends_on: [backend]
"""


def load(text: str, *more: tuple[str, str], lookup: dict[str, str] | None = None) -> ComposeProject:
    tree = MemoryTree({"compose.yaml": text, **dict(more)})
    files = ["compose.yaml", *(name for name, _ in more if name.startswith("compose"))]
    return load_project(files, tree, (lookup or {}).get)


def test_services_in_file_order() -> None:
    assert list(load(APP).services) == ["proxy", "db", "backend", "frontend"]


def test_depends_on_list_and_mapping_forms() -> None:
    services = load(APP).services
    assert list(services["proxy"].depends_on) == ["frontend", "backend"]
    assert services["backend"].depends_on["db"].condition == "service_healthy"
    assert services["db"].depends_on == {}


def test_default_order_puts_dependencies_first() -> None:
    assert load(APP).default_order() == ["db", "backend", "frontend", "proxy"]


def test_default_order_keeps_file_order_when_independent() -> None:
    assert load("services:\n  c: {image: x}\n  a: {image: x}\n  b: {image: x}\n").default_order() == ["c", "a", "b"]


def test_dependency_outside_the_file_is_ignored_by_the_order() -> None:
    assert load("services:\n  web:\n    image: x\n    depends_on: [external]\n").default_order() == ["web"]


@pytest.mark.parametrize("text", [
    "services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n",
    "services:\n  a: {image: x, depends_on: {b: {condition: service_started}}}\n  b: {image: x, depends_on: [c]}\n"
    "  c: {image: x, depends_on: [a]}\n",
    "services:\n  a: {image: x, depends_on: [a]}\n",
], ids=["two", "three-mixed-forms", "self"])
def test_cycle_is_an_error(text: str) -> None:
    with pytest.raises(ComposeCycle):
        load(text).default_order()


def test_a_long_chain_neither_recurses_nor_rescans() -> None:
    n = 5000  # deeper than Python's recursion limit
    text = "services:\n" + "".join(f"  s{i}: {{image: x, depends_on: [s{i + 1}]}}\n" for i in range(n)) + f"  s{n}: {{image: x}}\n"
    assert load(text).default_order() == [f"s{i}" for i in range(n, -1, -1)]


def test_profiles_default_to_none_active() -> None:
    project = load("services:\n  web: {image: x}\n  seed: {image: x, profiles: [seed]}\n  dbg: {image: x, profiles: [debug, dev]}\n")
    assert project.active() == ["web"]
    assert project.active(["seed"]) == ["web", "seed"]
    assert project.active(["dev"]) == ["web", "dbg"]
    assert project.active(["*"]) == ["web", "seed", "dbg"]


def test_jobs_are_what_a_service_waits_to_complete() -> None:
    project = load("services:\n  migrate: {image: x}\n  web:\n    image: x\n    depends_on:\n"
                   "      migrate: {condition: service_completed_successfully}\n")
    assert project.jobs(project.active()) == {"migrate": "web"}


@pytest.mark.parametrize(("spec", "reason"), [
    ("container_name: web1", "`container_name: web1` allows one container"),
    ("network_mode: host", "network_mode: host"),
    ("ports: ['8080:80']", "fixed host port(s) 8080:80"),
    ("ports: ['127.0.0.1:8080:80/tcp']", "127.0.0.1:8080:80"),
    ("ports: [{target: 80, published: 8080}]", "8080:80"),
    ("ports: ['9000-9001:9000-9001']", "9000-9001"),
    ("ports: ['[::1]:8080:80']", "::1:8080:80"),
])
def test_singletons_say_why(spec: str, reason: str) -> None:
    svc = load(f"services:\n  web:\n    image: x\n    {spec}\n").services["web"]
    assert reason in (svc.singleton_reason() or "")


@pytest.mark.parametrize("spec", ["ports: ['80']", "ports: [80]", "ports: ['127.0.0.1::80']", "expose: [80]",
                                  "ports: [{target: 80}]", "network_mode: bridge"])
def test_services_that_can_run_twice(spec: str) -> None:
    assert load(f"services:\n  web:\n    image: x\n    {spec}\n").services["web"].singleton_reason() is None


def test_volumes_short_and_long_forms() -> None:
    svc = load("services:\n  web:\n    image: x\n    volumes:\n      - ./nginx.conf:/etc/nginx/nginx.conf:ro\n"
               "      - data:/data\n      - /var/run/docker.sock:/var/run/docker.sock\n      - /anonymous\n"
               "      - {type: bind, source: ./site, target: /srv}\n      - {type: tmpfs, target: /tmp}\n"
               "volumes: {data: {}}\n").services["web"]
    assert [(m.type, m.source, m.target, m.read_only) for m in svc.volumes] == [
        ("bind", "./nginx.conf", "/etc/nginx/nginx.conf", True), ("volume", "data", "/data", False),
        ("bind", "/var/run/docker.sock", "/var/run/docker.sock", False), ("volume", None, "/anonymous", False),
        ("bind", "./site", "/srv", False), ("tmpfs", None, "/tmp", False)]


def test_interpolation_uses_the_servers_values_and_records_every_use() -> None:
    text = ("services:\n  web:\n    image: shop/web:${TAG:-latest}\n    environment:\n      DB: ${DB_PASSWORD}\n"
            "      MODE: $MODE\n      REQ: ${REQ:?set REQ}\n")
    project = load(text, lookup={"MODE": "prod"})
    web = project.services["web"]
    assert web.image == "shop/web:latest"
    assert web.environment == {"DB": "", "MODE": "prod", "REQ": ""}
    assert [(v.name, v.op, v.key, v.needs_value) for v in project.variables] == [
        ("TAG", ":-", "services.web.image", False), ("DB_PASSWORD", "", "services.web.environment.DB", True),
        ("MODE", "", "services.web.environment.MODE", True), ("REQ", ":?", "services.web.environment.REQ", True)]
    assert project.variables[-1].message == "set REQ"


def test_raw_values_stay_as_written() -> None:
    project = load_project(["compose.yaml"], MemoryTree({"compose.yaml": "services:\n  web:\n    build:\n      context: .\n"
                                                                         "      args: {V: '${V:?need V}'}\n"}), None)
    assert project.services["web"].build is not None
    assert project.services["web"].build.args == {"V": "${V:?need V}"}


def test_build_fields() -> None:
    build = load("services:\n  web:\n    build:\n      context: ./app\n      dockerfile: docker/Dockerfile.prod\n"
                 "      target: runtime\n      args: [NODE_ENV=production, TOKEN]\n").services["web"].build
    assert build is not None
    assert (build.context, build.dockerfile, build.target, build.args) == (
        "./app", "docker/Dockerfile.prod", "runtime", {"NODE_ENV": "production", "TOKEN": None})


def test_override_files_merge_like_compose() -> None:
    base = ("services:\n  web:\n    build: ./web\n    command: [serve, --dev]\n    environment: {A: '1', B: '2'}\n"
            "    ports: ['8000:8000']\n    volumes: ['./src:/app', 'cache:/cache']\n    labels: [a=1]\n"
            "    depends_on: [db]\n  db: {image: postgres}\nvolumes: {cache: {}}\n")
    prod = ("services:\n  web:\n    build: {target: prod}\n    command: [serve]\n    environment: [B=3, C=4]\n"
            "    ports: !reset []\n    volumes: ['data:/app']\n    labels: {b: '2'}\n"
            "    depends_on: {cache: {condition: service_healthy}}\n  cache: {image: redis}\n")
    web = load(base, ("compose.prod.yaml", prod)).services["web"]
    assert web.build is not None and (web.build.context, web.build.target) == ("./web", "prod")
    assert web.command == ["serve"]  # replaced, not appended
    assert web.environment == {"A": "1", "B": "3", "C": "4"}
    assert web.ports == ()
    assert [(m.source, m.target) for m in web.volumes] == [("data", "/app"), ("cache", "/cache")]  # same target: replaced
    assert web.labels == {"a": "1", "b": "2"}
    assert {n: d.condition for n, d in web.depends_on.items()} == {"db": "service_started", "cache": "service_healthy"}


def test_override_replaces_a_whole_value() -> None:
    web = load("services:\n  web: {image: x, ports: ['80:80']}\n",
               ("compose.prod.yaml", "services:\n  web:\n    ports: !override ['443:443']\n")).services["web"]
    assert [p.published for p in web.ports] == ["443"]


def test_extends_in_the_same_and_another_file() -> None:
    text = ("services:\n  base: {image: app, environment: {A: '1'}}\n  web: {extends: base, environment: {B: '2'}}\n"
            "  worker: {extends: {file: common/services.yaml, service: worker}}\n")
    common = "services:\n  worker:\n    build: ./worker\n    volumes: ['./conf:/conf']\n"
    project = load(text, ("common/services.yaml", common))
    assert project.services["web"].image == "app"
    assert project.services["web"].environment == {"A": "1", "B": "2"}
    worker = project.services["worker"]
    assert worker.build is not None and worker.build.context == "common/worker"  # relative to the project now
    assert worker.volumes[0].source == "common/conf"
    assert [r.path for r in project.compose_refs] == ["common/services.yaml"]


def test_extends_loop_is_a_problem() -> None:
    project = load("services:\n  a: {extends: b, image: x}\n  b: {extends: a, image: x}\n")
    assert any("leads back to itself" in str(p) for p in project.problems)


@pytest.mark.parametrize(("text", "words"), [
    ("services:\n  'web;rm -rf /': {image: x}\n", ("services.web;rm -rf /", "not a valid service name")),
    ("- services\n", ("compose.yaml", "is a YAML list")),
    ("", ("compose.yaml", "is empty")),
    ("services: [web]\n", ("services:", "mapping")),
    ("version: '3'\n", ("no `services:` mapping",)),
    ("services:\n  web: {image: x, ports: ['80:80:80:80:x']}\n", ("services.web.ports[0]",)),
    ("services:\n  web: {image: x, volumes: ['src:/dst:ro:extra']}\n", ("services.web.volumes[0]",)),
    ("services:\n  web: {image: x, environment: 5}\n", ("services.web.environment",)),
    ("services:\n  web: {image: '${A B}'}\n", ("services.web.image", "Write `$$`")),
    ("services:\n  web: {image: x, depends_on: {db: {condition: service_ready}}}\n  db: {image: x}\n",
     ("services.web.depends_on", "service_ready")),
    ("services:\n  web: 5\n", ("services.web", "a mapping")),
    (b"services:\n  web: {image: caf\xe9}\n", ("not UTF-8",)),
    ("services:\n  web:\n    image: x\n    image: y\n", ("defined twice",)),
])
def test_problems_name_the_file_and_key(text: str | bytes, words: tuple[str, ...]) -> None:
    project = load_project(["compose.yaml"], MemoryTree({"compose.yaml": text}))
    problems = [str(p) for p in project.problems]
    assert any(all(w in p for w in words) for p in problems), problems
    assert all("\n" not in p for p in problems)


def test_every_problem_is_collected() -> None:
    text = "services:\n  'a b': {image: x}\n  web: {image: x, ports: [nope], volumes: ['src::dst']}\n"
    assert len(load(text).problems) == 3


def test_missing_override_file_is_named() -> None:
    project = load_project(["compose.yaml", "compose.prod.yaml"], MemoryTree({"compose.yaml": APP}),
                           config_file="shipline.yml")
    assert [str(p) for p in project.problems] == [
        "shipline.yml: compose[1]: the Compose file compose.prod.yaml does not exist in commit 0123456. Set "
        "`compose:` to your production Compose file (or a list, base file first), relative to shipline.yml."]


def test_swarm_only_keys_are_noticed() -> None:
    svc = load("services:\n  web:\n    image: x\n    deploy: {replicas: 3, placement: {constraints: [node.role==worker]}}\n"
               ).services["web"]
    assert svc.replicas == 3 and svc.swarm_keys == ("placement",)
