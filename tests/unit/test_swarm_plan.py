from datetime import UTC, datetime
from pathlib import Path

import pytest

from shipline import swarm_commands as sc
from shipline.errors import ConfigError
from shipline.plan import Trigger, compile_plan
from shipline.project import load_project
from shipline.swarm_plan import describe
from shipline.swarm_stack import ignored_keys

from .swarm_projects import COMPOSE, SHIPLINE, swarm_project


def test_each_service_gets_its_swarm_strategy_and_routed_ones_their_port_and_network(tmp_path: Path) -> None:
    sp = swarm_project(tmp_path).swarm
    assert sp is not None and sp.stack == "shop" and sp.api_port == 8080 and sp.proxy == "proxy"
    assert {s.name: s.strategy for s in sp.services} == {
        "proxy": "recreate", "db": "recreate", "backend": "zero-downtime", "frontend": "zero-downtime",
        "worker": "start-first"}
    assert [s.name for s in sp.versioned] == ["backend", "frontend", "worker"]
    assert [(s.name, s.port, s.network) for s in sp.routed] == [("backend", 8000, "shop_web"), ("frontend", 8080, "shop_web")]
    backend = sp.service("backend")
    assert (backend.health_timeout, backend.drain, backend.stop_timeout) == (30, 2, 20)
    assert sp.migrate is not None and sp.migrate.command == ("sh", "-c", "python -m app.migrate")


def test_a_job_is_a_one_off_service_and_recreate_can_be_asked_for(tmp_path: Path) -> None:
    compose = COMPOSE.replace("  worker:\n", "  seed:\n    build: ./backend\n    command: python -m app.seed\n  worker:\n")
    compose = compose.replace("    depends_on: {db: {condition: service_healthy}}",
                              "    depends_on: {db: {condition: service_healthy}, seed: {condition: service_completed_successfully}}")
    shipline = SHIPLINE.replace("  worker: {context: backend}", "  worker: {context: backend}\n  seed: {context: backend}")
    shipline = shipline.replace("    backend: {health_timeout: 30", "    worker: {strategy: recreate}\n    backend: {health_timeout: 30")
    sp = swarm_project(tmp_path, shipline, compose).swarm
    assert sp is not None
    assert sp.service("seed").strategy == "job" and "service_completed_successfully" in sp.service("seed").why
    assert sp.service("worker").strategy == "recreate" and [s.name for s in sp.in_place] == ["proxy", "db", "worker"]


@pytest.mark.parametrize(("compose", "shipline", "expected"), [
    (COMPOSE.replace("    volumes: [pgdata:/var/lib/postgresql/data]", "    volumes: [./pgdata:/var/lib/postgresql/data]"),
     SHIPLINE, "would be a different directory on each node"),
    (COMPOSE.replace("    networks: {web: {}, data: {aliases: [api]}}", "    networks: [data]"),
     SHIPLINE, "shares no network with it"),
    (COMPOSE.replace("    mem_limit: 512m", "    ports: [\"8000:8000\"]"), SHIPLINE, "two releases' services cannot both hold"),
    (COMPOSE, SHIPLINE.replace("type: traefik", "type: caddy").replace("  api: 127.0.0.1:8080\n", ""),
     "caddy is not supported there yet"),
    (COMPOSE, SHIPLINE + "roles: {web: [proxy, backend, frontend, worker, db]}\n",
     "Swarm places every task itself, so roles cannot say"),
])
def test_what_cannot_work_on_a_swarm_is_refused_before_anything_runs(tmp_path: Path, compose: str, shipline: str,
                                                                     expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        swarm_project(tmp_path, shipline, compose)
    assert expected in str(err.value)


def test_a_file_of_the_commit_mounted_into_a_task_is_refused(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.ini").write_text("x=1\n")
    compose = COMPOSE.replace("    mem_limit: 512m", "    volumes: [./conf/app.ini:/etc/app.ini:ro]")
    with pytest.raises(ConfigError) as err:
        swarm_project(tmp_path, compose=compose)
    assert "reaches the manager only. Use `configs:`" in str(err.value)


def test_the_plan_says_every_step_and_command_of_a_swarm_deploy(tmp_path: Path) -> None:
    sp = swarm_project(tmp_path).swarm
    assert sp is not None
    lines = describe(sp, ["deploy@10.0.0.1", "deploy@10.0.0.2"], ".shipline/shop", {"backend": "r/b:1"}, 5,
                     ignored_keys(sp))
    text = "\n".join(lines)
    assert "stack shop through the manager deploy@10.0.0.1" in lines[0]
    assert "pull on every node: r/b:1" in text
    assert "--compose-file ~/.shipline/shop/releases/<N>/stack-base.yml shop" in text
    assert "updates in place, when their definition changed: proxy, db" in text
    assert "one-off service shop_migrate-r<N>" in text
    assert "backend -> shop_backend-r<N> (network alias backend)" in text and "healthy within 30s" in text
    assert "backend: http://shop_backend-r<N>:8000 (on shop_web, where Swarm's DNS resolves" in text
    assert "drain 2s, then `docker service rm`" in text
    assert "backend: left out of the stack file (Swarm does not read them): mem_limit" in text
    assert "ledger.jsonl on deploy@10.0.0.1" in text and "(images on deploy@10.0.0.2 too)" in text


def test_stack_deploy_reads_its_variables_from_the_release_file_never_from_argv() -> None:
    argv = sc.stack_deploy("shop", "/r/12/stack.yml", "/r/12/stack.env")
    assert argv[:2] == ["sh", "-c"] and argv[3:] == ["shipline-stack", "/r/12/stack.env", "/r/12/stack.yml", "shop"]
    assert '. "$1" && exec docker stack deploy' in argv[2] and "--with-registry-auth" in argv[2]
    assert "--prune" not in argv[2], "services of other releases are left alone"
    assert sc.services("dev.shipline.app", "shop") == ["docker", "service", "ls", "--quiet", "--filter",
                                                       "label=dev.shipline.app=shop"]
    assert sc.task_containers("shop_proxy")[-3:] == ["label=com.docker.swarm.service.name=shop_proxy", "--filter",
                                                     "status=running"]
    assert sc.rollback_service("shop_db") == ["docker", "service", "rollback", "--detach", "shop_db"]


def test_shipline_plan_of_the_swarm_example_prints_the_swarm_deploy_without_docker(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    key.write_text("not read by plan\n")
    pin = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKcW1x4Z1Rk9E3q2n0b7oJm1fQ7b0v9Xx9cQW3+e3q1Z"
    env = {"SHIPLINE_SSH_KEY": str(key), **{f"SWARM_NODE_{i}": f"deploy@10.0.0.{i}" for i in (1, 2, 3)},
           **{f"SWARM_NODE_{i}_HOST_KEY": pin for i in (1, 2, 3)}}
    example = Path(__file__).resolve().parents[2] / "examples" / "swarm" / "shipline.yml"
    trigger = Trigger(ref="refs/heads/main", sha="0" * 40, short_sha="0000000", source="cli", actor="ann")
    text = compile_plan(load_project(example, env=env), trigger, datetime(2026, 11, 27, tzinfo=UTC)).render()
    assert "Docker Swarm: stack swarm through the manager deploy@10.0.0.1" in text
    assert "backend -> swarm_backend-r<N> (network alias backend)" in text
    assert "frontend: http://swarm_frontend-r<N>:8080 (on swarm_web" in text
    assert "migrate: one-off service swarm_migrate-r<N>" in text and "db: recreate" in text
    assert "docker compose" not in text, "nothing of compose mode's rollout"
