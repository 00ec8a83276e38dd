import subprocess

import yaml

from shipline import swarm_stack as ss
from shipline.layout import RELEASE_LABEL

COMPOSE = yaml.safe_load("""
services:
  proxy:
    image: traefik:v3.7
    ports: [{target: 443, published: 443, mode: host}]
    restart: unless-stopped
    deploy: {mode: global}
  db:
    image: postgres:15
    volumes: [pgdata:/var/lib/postgresql/data]
    networks: [data]
  backend:
    build: ./backend
    environment: {DATABASE_PASSWORD: "${POSTGRES_PASSWORD:?set it}"}
    depends_on: {db: {condition: service_healthy}}
    networks: {web: {}, data: {aliases: [api]}}
    ports: ["8000"]
    deploy: {replicas: 3, labels: ["team=shop"], endpoint_mode: dnsrr}
  worker:
    build: ./backend
networks: {web: {}, data: {}}
volumes: {pgdata: {}}
""")
IMAGES = {"backend": "r/shop/backend:abc1234", "worker": "r/shop/backend:abc1234"}


def test_built_services_get_one_swarm_service_per_release_under_their_name_as_alias() -> None:
    stack = ss.render(COMPOSE, "shop", 12, IMAGES)
    assert stack["version"] == "3.8" and set(stack["services"]) == {"proxy", "db", "backend-r12", "worker-r12"}
    backend = stack["services"]["backend-r12"]
    assert backend["image"] == "r/shop/backend:abc1234"
    assert backend["networks"] == {"web": {"aliases": ["backend"]}, "data": {"aliases": ["api", "backend"]}}
    assert stack["services"]["worker-r12"]["networks"] == {"default": {"aliases": ["worker"]}}
    assert backend["deploy"]["labels"] == {"team": "shop", ss.APP_LABEL: "shop", ss.SERVICE_LABEL: "backend",
                                           RELEASE_LABEL: "12"}
    assert backend["deploy"]["replicas"] == 3 and backend["deploy"]["endpoint_mode"] == "dnsrr"
    assert "build" not in backend and "depends_on" not in backend
    assert backend["environment"] == {"DATABASE_PASSWORD": "${POSTGRES_PASSWORD:?set it}"}, "docker stack deploy interpolates"
    assert "restart" not in stack["services"]["proxy"] and stack["services"]["proxy"]["deploy"]["mode"] == "global"
    assert stack["volumes"] == {"pgdata": {}} and COMPOSE["services"]["backend"]["build"] == "./backend", "input untouched"


def test_the_migration_is_a_one_off_service_of_the_new_image_with_the_services_networks() -> None:
    stack = ss.render_migration(COMPOSE, "shop", 12, "backend", "r/shop/backend:abc1234", ["python", "-m", "app.migrate"])
    job = stack["services"]["migrate-r12"]
    assert job["command"] == ["python", "-m", "app.migrate"] and job["image"] == "r/shop/backend:abc1234"
    assert job["deploy"]["replicas"] == 1 and job["deploy"]["restart_policy"] == {"condition": "none"}
    assert job["healthcheck"] == {"disable": True} and "ports" not in job
    assert job["networks"] == {"web": {}, "data": {"aliases": ["api"]}}
    assert list(stack["services"]) == ["migrate-r12"]


def test_stack_env_is_read_back_exactly_by_a_posix_shell() -> None:
    values = {"A": "plain", "B": "it's $HOME `x` \\ \"q\"", "C": "two\nlines"}
    script = ss.stack_env(values) + 'printf "%s\\0" "$A" "$B" "$C"'
    out = subprocess.run(["sh", "-c", script], capture_output=True, check=True).stdout
    assert out.split(b"\0")[:3] == [v.encode() for v in values.values()]
