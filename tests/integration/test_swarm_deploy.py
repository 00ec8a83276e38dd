"""`deploy.mode: swarm` on the three VPS nodes (one swarm of three managers), under constant load through a front
load balancer: a backend change fails no request, a release that never becomes healthy is rolled back without a
failed request, and the database's volume and data outlive both. One stack (examples/swarm) serves every test.

The front proxy (Caddy on the machine, round robin, no retries) spreads requests over the three nodes' own
Traefik (published in host mode), so a request any node fails is a failed request here.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shipline.errors import ExitCode

from .fleet import host_versions
from .front import FrontProxy
from .load import LoadGenerator, LoadResult
from .stack import AppRepo
from .swarm import app_services, remove_stack, swarm_repo
from .vps import Node

pytestmark = pytest.mark.integration
RATE = 100  # requests per second through the front proxy


@dataclass
class Swarm:
    repo: AppRepo
    front: FrontProxy
    nodes: list[Node]

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    def under_load(self, *args: str) -> tuple[int, str, LoadResult]:
        with LoadGenerator(self.front.url, rate=RATE, workers=16, paths=["/api/version", "/"]) as gen:
            time.sleep(1)
            res = self.repo.shipline(*args)
            time.sleep(1)
        assert gen.result is not None
        print(gen.result.summary())
        return res.code, res.out, gen.result

    def db_task(self) -> tuple[str, str]:
        """The database's container and its volume's creation time, on the node that holds them."""
        node = self.manager
        container = node.docker("ps", "-q", "--no-trunc", "--filter",
                                f"label=com.docker.swarm.service.name={self.repo.app}_db").split()
        created = node.docker("volume", "inspect", "--format", "{{.CreatedAt}}", f"{self.repo.app}_pgdata").strip()
        assert len(container) == 1 and created, (container, created)
        return container[0], created


@pytest.fixture(scope="module")
def swarm(vps_nodes: list[Node], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swarm]:
    app = f"sw{uuid.uuid4().hex[:8]}"
    repo = swarm_repo(Path(tmp_path_factory.mktemp("swarm")), app, vps_nodes)
    try:
        first = repo.shipline("deploy")
        assert first.code == 0, first.out
        upstreams = [f"{n.ip}:{repo.port}" for n in vps_nodes]
        with FrontProxy(upstreams, network="shipline-vps", tls=True, workdir=repo.path.parent) as front:
            created = httpx.post(front.url + "/api/items", json={"text": "kept across releases"}, timeout=10)
            assert created.status_code == 201, created.text
            yield Swarm(repo, front, vps_nodes)
    finally:
        remove_stack(app, vps_nodes)


def change_backend(repo: AppRepo, label: str) -> str:
    repo.edit(f"{repo.sources}backend/app/web.py", '"""HTTP layer', f'# {label}\n"""HTTP layer')
    return repo.commit(label)


def items(front: FrontProxy) -> list[str]:
    return [i["text"] for i in httpx.get(front.url + "/api/items", timeout=10).json()]


def test_a_backend_change_goes_out_with_no_failed_request_and_the_database_untouched(swarm: Swarm) -> None:
    repo, manager = swarm.repo, swarm.manager
    db_before = swarm.db_task()
    old = {n for n in app_services(repo.app, manager) if "_backend-r" in n}
    new = change_backend(repo, "swarm change")
    code, out, load = swarm.under_load("deploy", "-v")  # -v: the migration's log too
    assert code == 0, out
    assert load.failed == 0, f"{load.failures_by_kind()} {load.summary()}"
    assert load.total >= 0.8 * RATE * 8, load.summary()
    assert host_versions(repo, swarm.nodes) == [new] * 3
    assert out.count("Traefik switched to") == 6 and out.count("and confirmed") == 6, "two routes on three nodes"
    assert "migration completed" in out and "migrations applied" in out, "the one-off service ran and its log shows"
    services = app_services(repo.app, manager)
    assert not old & set(services), "the previous release's backend service was removed"
    assert sum("_backend-r" in n for n in services) == 1
    assert swarm.db_task() == db_before, "the database kept its task and its volume"
    assert "kept across releases" in items(swarm.front)


def task_addresses(manager: Node, service: str) -> set[str]:
    ids = manager.docker("service", "ps", "--quiet", "--filter", "desired-state=running", service).split()
    out = manager.docker("inspect", "--format", "{{range .NetworksAttachments}}{{range .Addresses}}{{.}} {{end}}{{end}}", *ids)
    return set(out.split())


def test_tasks_swarm_replaces_are_reached_without_a_deploy(swarm: Swarm) -> None:
    """The routes name the release's service, not its tasks' addresses: tasks that Swarm replaces (here every
    backend task, by a forced update) get new addresses and still receive every request, with no deploy."""
    repo, manager = swarm.repo, swarm.manager
    backend = next(n for n in app_services(repo.app, manager) if "_backend-r" in n)
    before = task_addresses(manager, backend)
    manager.docker("service", "update", "--force", "--detach=false", "--quiet", backend)
    after = task_addresses(manager, backend)
    assert len(after) == len(before) == 4 and not before & after, (before, after)  # 2 tasks on 2 networks
    answers = [httpx.get(swarm.front.url + "/api/version", timeout=10).status_code for _ in range(30)]
    assert answers == [200] * 30, answers


def test_a_never_healthy_release_is_rolled_back_with_no_failed_request(swarm: Swarm) -> None:
    repo = swarm.repo
    serving = host_versions(repo, swarm.nodes)
    assert len(set(serving)) == 1 and not serving[0].startswith("error"), serving
    before = app_services(repo.app, swarm.manager)
    db_before = swarm.db_task()
    # A backend that listens on the wrong port: its health check never passes.
    repo.edit(f"{repo.sources}backend/app/__main__.py", "port=settings.port)", "port=settings.port + 1)")
    config = repo.path / repo.config
    config.write_text(config.read_text().replace("backend: {health_timeout: 45", "backend: {health_timeout: 20"))
    repo.commit("backend never healthy")
    code, out, load = swarm.under_load("deploy")
    assert code == ExitCode.DEPLOY_FAILED, out
    assert "did not become healthy within 20s" in out and "The previous release is serving" in out
    assert load.failed == 0, f"{load.failures_by_kind()} {load.summary()}"
    assert host_versions(repo, swarm.nodes) == serving
    assert app_services(repo.app, swarm.manager) == before, "the failed release's services are gone, the others untouched"
    assert swarm.db_task() == db_before
    history = json.loads(repo.shipline("releases", "--json").out)
    assert history[0]["status"] == "failed" and history[1]["status"] == "succeeded"
    assert "kept across releases" in items(swarm.front)
    repo.edit(f"{repo.sources}backend/app/__main__.py", "port=settings.port + 1)", "port=settings.port)")
    repo.commit("backend healthy again (not deployed here)")


def test_status_and_rollback_read_the_managers_ledger(swarm: Swarm) -> None:
    repo = swarm.repo
    history = json.loads(repo.shipline("releases", "--json").out)
    live = next(r for r in history if r["status"] == "succeeded")
    earlier = next(r for r in history if r["status"] == "succeeded" and r["sha"] != live["sha"])
    status = repo.shipline("status", "--json")
    assert status.code == 0, status.out
    data = json.loads(status.out)
    assert data["drift"] is False
    manager, *others = data["hosts"]
    assert manager["release"]["number"] == live["number"]
    assert {s["service"] for s in manager["services"]} >= {f"{repo.app}_db", f"{repo.app}_proxy",
                                                          f"{repo.app}_backend-r{live['number']}"}
    assert all("node" in h and "release" not in h for h in others)
    rolled = repo.shipline("rollback")
    assert rolled.code == 0, rolled.out
    assert host_versions(repo, swarm.nodes) == [earlier["short_sha"]] * 3
    newest = json.loads(repo.shipline("releases", "--json").out)[0]
    assert newest["rollback_of"] == earlier["number"] and newest["status"] == "succeeded"
    assert "kept across releases" in items(swarm.front)


@pytest.mark.parametrize("marker", [
    "Traefik switched to",  # one node switched to the new tasks, the others not yet
    "draining",             # every node switched, the previous release's services not yet removed, nothing recorded
])
def test_a_deploy_killed_mid_switch_fails_no_request_and_the_next_deploy_heals(swarm: Swarm, marker: str) -> None:
    repo, manager = swarm.repo, swarm.manager
    new = change_backend(repo, f"killed at {marker}")
    with LoadGenerator(swarm.front.url, rate=RATE, workers=16, paths=["/api/version", "/"]) as gen:
        time.sleep(1)
        proc = subprocess.Popen([sys.executable, "-m", "shipline", "deploy", "--config", repo.config], cwd=repo.path,
                                env={**repo.env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if marker in line:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        out = "".join(seen)
        assert marker in out, out
        killed = int(re.search(r"release (\d+):", out).group(1))  # type: ignore[union-attr]
        healed = repo.shipline("deploy")
        time.sleep(1)
    assert gen.result is not None
    print(gen.result.summary())
    assert healed.code == 0, healed.out
    assert "healed:" in healed.out and f"backend-r{killed}" in healed.out, "the killed release's services removed"
    assert gen.result.failed == 0, f"{gen.result.failures_by_kind()} {gen.result.summary()}"
    assert host_versions(repo, swarm.nodes) == [new] * 3
    services = app_services(repo.app, manager)
    assert sum("_backend-r" in n for n in services) == 1 and sum("_frontend-r" in n for n in services) == 1, services
    record = next(r for r in json.loads(repo.shipline("releases", "--json").out) if r["number"] == killed)
    assert record["status"] == "interrupted", record
    assert "kept across releases" in items(swarm.front)
