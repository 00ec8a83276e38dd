"""Three servers behind a load balancer, under constant load through it: rolling batches with zero downtime.

The example runs on the three VPS nodes (roles: the database on the first, proxy + backend + frontend on all),
`deploy.batch: 1`. The load generator sends every request through the front proxy (Caddy on the machine,
round robin, no retries), so a request any server fails is a failed request here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipline.errors import ExitCode

from .fleet import FAULT_DIR, backend_containers, break_backend, fleet_repo, host_versions, remove_app
from .front import FrontProxy
from .load import LoadGenerator, LoadResult
from .stack import AppRepo
from .vps import Node

pytestmark = pytest.mark.integration
RATE = 100  # requests per second through the front proxy


@pytest.fixture(scope="module")
def fleet(vps_nodes: list[Node], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AppRepo, FrontProxy]]:
    app = f"fl{uuid.uuid4().hex[:8]}"
    repo = fleet_repo(Path(tmp_path_factory.mktemp("fleet")), app, vps_nodes, batch=1)
    try:
        first = repo.shipline("deploy")
        assert first.code == 0, first.out
        upstreams = [f"{n.ip}:{repo.port}" for n in vps_nodes]
        with FrontProxy(upstreams, network="shipline-vps", tls=True, workdir=repo.path.parent) as front:
            yield repo, front
    finally:
        remove_app(app, vps_nodes)


def under_load(front: FrontProxy, repo: AppRepo, *args: str) -> tuple[int, str, LoadResult]:
    with LoadGenerator(front.url, rate=RATE, workers=16, paths=["/api/version", "/"]) as gen:
        time.sleep(1)
        res = repo.shipline(*args)
        time.sleep(1)
    assert gen.result is not None
    print(gen.result.summary())
    return res.code, res.out, gen.result


def change_backend(repo: AppRepo, label: str) -> str:
    repo.edit("backend/app/web.py", '"""HTTP layer', f'# {label}\n"""HTTP layer')
    return repo.commit(label)


def test_backend_change_goes_out_in_batches_with_no_failed_request(fleet: tuple[AppRepo, FrontProxy], vps_nodes: list[Node]) -> None:
    repo, front = fleet
    new = change_backend(repo, "fleet change")
    code, out, load = under_load(front, repo, "deploy")
    assert code == 0, out
    assert load.failed == 0, f"{load.failures_by_kind()} {load.summary()}"
    assert load.total >= 0.8 * RATE * 8, load.summary()
    assert host_versions(repo, vps_nodes) == [new] * 3
    for n, label in zip(vps_nodes, ("batch 1/3 (canary)", "batch 2/3", "batch 3/3"), strict=True):
        assert f"{label}: switching {n.address}" in out
    assert out.count("release phase: migrate") == 1, "migrations run once, on one host"
    assert "3 hosts prepared in parallel" in out
    assert [len(backend_containers(repo.app, n)) for n in vps_nodes] == [1, 1, 1], "old backends retired everywhere"


def test_never_healthy_on_the_second_batch_is_undone_on_the_first_too(fleet: tuple[AppRepo, FrontProxy], vps_nodes: list[Node]) -> None:
    repo, front = fleet
    serving = host_versions(repo, vps_nodes)
    assert len(set(serving)) == 1
    vps_nodes[1].sh(f"touch {FAULT_DIR}/never-healthy")
    try:
        break_backend(repo)
        code, out, load = under_load(front, repo, "deploy")
    finally:
        vps_nodes[1].sh(f"rm -f {FAULT_DIR}/never-healthy")
    assert code == ExitCode.DEPLOY_FAILED, out
    assert load.failed == 0, f"{load.failures_by_kind()} {load.summary()}"
    assert f"{vps_nodes[1].address}: backend did not become healthy" in out
    assert f"switching back {vps_nodes[0].address}, which had switched" in out
    assert "batch 3/3" not in out, "the third host was never touched"
    assert host_versions(repo, vps_nodes) == serving, "every host runs the old release"
    assert [len(backend_containers(repo.app, n)) for n in vps_nodes] == [1, 1, 1]
    repo.edit("backend/app/__main__.py", "port=settings.port + os.path.exists('/fault/never-healthy'))", "port=settings.port)")
    repo.commit("repair")


def test_an_unreachable_host_stops_the_deploy_before_any_host_switches(fleet: tuple[AppRepo, FrontProxy], vps_nodes: list[Node]) -> None:
    repo, front = fleet
    serving = host_versions(repo, vps_nodes)
    change_backend(repo, "while a host is down")
    down = vps_nodes[2]
    down.stop_sshd()
    try:
        code, out, load = under_load(front, repo, "deploy")
    finally:
        down.start_sshd()
    assert code == ExitCode.HOST_UNREACHABLE, out
    assert f"Cannot connect to {down.address}" in out and "Nothing was changed on any host" in out
    assert "switching" not in out and "Traceback" not in out
    assert load.failed == 0, f"{load.failures_by_kind()} {load.summary()}"
    assert host_versions(repo, vps_nodes) == serving
