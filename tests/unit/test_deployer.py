from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from shipline.config import load_project
from shipline.deployer import DeploySettings, HostDeployer, ReleaseFiles, choose_endpoint
from shipline.errors import DeployFailed
from shipline.plan import Trigger, compile_plan
from shipline.reporter import Reporter

from .fakes import FakeDockerHost, FakeProxy
from .projects import PROXY, SHIPLINE, write_project

TRIGGER = Trigger(ref="main", sha="a" * 40, short_sha="aaaaaaa")
SETTINGS = DeploySettings(lock_ttl=600, lock_wait=0, keep=[2, 1], keep_images={"r/shop/backend:aaaaaaa"})
PROXIED = SHIPLINE + PROXY


class Setup:
    def __init__(self, tmp_path: Path, host: FakeDockerHost, shipline: str = SHIPLINE) -> None:
        project = load_project(write_project(tmp_path, shipline), env={})
        plan = compile_plan(project, TRIGGER, datetime.now(UTC))
        self.out = StringIO()
        self.files = ReleaseFiles(2, b"services: {}\n", plan.images, b"POSTGRES_PASSWORD='s3cret-value'\n",
                                  {"actor": "ann", "short_sha": "aaaaaaa"})
        self.proxy = FakeProxy()
        self.sleeps: list[float] = []
        self.host = host
        self.deployer = HostDeployer(host, plan.deploys[0], "shop", Reporter(Console(file=self.out)),
                                     project.config.proxy, sleep=self.sleeps.append, proxy_driver=self.proxy)

    def deploy(self, previous: int | None = 1) -> None:
        self.deployer.deploy(self.files, previous=previous, settings=SETTINGS)


def release_one(host: FakeDockerHost) -> FakeDockerHost:
    """The host as release 1 left it: one container per service."""
    for svc in ("proxy", "db", "backend", "frontend"):
        host._new(svc, "1")
    return host


def ups(host: FakeDockerHost) -> list[tuple[str, str]]:
    """(service, release) of every `compose up`, in order."""
    return [(c[-1], next(a for a in c if a.endswith("/.env")).split("/")[-2]) for c in host.ran("up", "--no-deps")]


def test_recreate_rolls_out_in_order_after_migrating_and_uploads_env_0600(tmp_path: Path) -> None:
    s = Setup(tmp_path, release_one(FakeDockerHost()))
    s.deploy()
    assert ups(s.host) == [("db", "2"), ("backend", "2"), ("frontend", "2"), ("proxy", "2")]
    migrate = s.host.commands.index(s.host.ran("run", "--rm")[0])
    assert migrate < s.host.commands.index(s.host.ran("up", "backend")[0])
    assert s.host.files[".shipline/shop/releases/2/.env"][1] == 0o600
    assert b"SHIPLINE_PROXY_DIR=/home/deploy/.shipline/shop/proxy" in s.host.files[".shipline/shop/releases/2/.env"][0]
    assert s.host.files[".shipline/shop/current"][0] == b"2\n"
    assert s.host.ran("rm", "-rf", ".shipline/shop/lock"), "lock released"


def test_recreate_failure_restores_touched_services_from_the_previous_release(tmp_path: Path) -> None:
    s = Setup(tmp_path, release_one(FakeDockerHost(lambda svc, rel: "unhealthy" if (svc, rel) == ("backend", "2") else "healthy")))
    with pytest.raises(DeployFailed, match="Release 1 is serving"):
        s.deploy()
    assert ups(s.host) == [("db", "2"), ("backend", "2"), ("backend", "1"), ("db", "1")]
    assert sorted(rel for _, rel in s.host.containers.values()) == ["1", "1", "1", "1"]
    assert ".shipline/shop/current" not in s.host.files
    assert s.host.ran("rm", "-rf", ".shipline/shop/lock"), "lock released after failure"


def test_zero_downtime_starts_beside_switches_then_retires_old(tmp_path: Path) -> None:
    s = Setup(tmp_path, release_one(FakeDockerHost()), PROXIED)
    old_backend = s.host.ids("backend")
    s.deploy()
    assert ("backend", "2") in ups(s.host) and s.host.ran("--scale", "backend=2")
    assert [svc for svc, _ in s.proxy.switches] == ["backend", "frontend"]
    new_backend = [c for c in s.host.ids("backend") if c not in old_backend]
    assert s.proxy.routes["backend"] == [f"10.0.0.{s.host.ip_suffix(new_backend[0])}:8000"]
    assert s.sleeps == [2.0], "drained once, after every service was switched"
    stop = s.host.ran("docker", "stop")[0]
    assert stop[:4] == ["docker", "stop", "-t", "30"] and old_backend[0] in stop
    last_switch = max(i for i, c in enumerate(s.host.commands) if "--scale" in c)
    assert s.host.commands.index(stop) > last_switch
    assert {rel for svc, rel in s.host.containers.values() if svc in ("backend", "frontend")} == {"2"}


@pytest.mark.parametrize("failure", ["unhealthy", "crash"])
def test_zero_downtime_failure_switches_back_and_removes_new_containers(tmp_path: Path, failure: str) -> None:
    host = release_one(FakeDockerHost(lambda svc, rel: failure if (svc, rel) == ("frontend", "2") else "healthy"))
    s = Setup(tmp_path, host, PROXIED)
    old_backend = f"10.0.0.{host.ip_suffix(host.ids('backend')[0])}:8000"
    with pytest.raises(DeployFailed, match="frontend did not become healthy"):
        s.deploy()
    new_backend = s.proxy.switches[0][1]
    assert new_backend != [old_backend]
    assert s.proxy.switches == [("backend", new_backend), ("backend", [old_backend])]
    assert sorted(rel for _, rel in host.containers.values()) == ["1", "1", "1", "1"], "new containers removed"
    assert not host.ran("docker", "stop"), "old containers never stopped"


def test_failed_migration_switches_nothing(tmp_path: Path) -> None:
    host = release_one(FakeDockerHost())
    host.rules.insert(0, lambda a: (1, "relation exists") if "run" in a and "--rm" in a else None)
    s = Setup(tmp_path, host, PROXIED)
    with pytest.raises(DeployFailed, match="migration failed"):
        s.deploy()
    assert s.proxy.switches == []
    assert not host.ran("up", "backend")


def test_interrupt_mid_rollout_undoes_and_releases_the_lock(tmp_path: Path) -> None:
    s = Setup(tmp_path, release_one(FakeDockerHost()), PROXIED)

    def interrupted(service: str, endpoints: list[str]) -> None:
        s.proxy.switches.append((service, endpoints))
        if len(s.proxy.switches) == 2:  # Ctrl-C while the frontend switch is being confirmed
            raise KeyboardInterrupt

    s.proxy.switch = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        s.deploy()
    assert [svc for svc, _ in s.proxy.switches] == ["backend", "frontend", "frontend", "backend"]
    assert s.host.ran("rm", "-rf", ".shipline/shop/lock")


def test_secret_never_reaches_the_output(tmp_path: Path) -> None:
    s = Setup(tmp_path, release_one(FakeDockerHost()), PROXIED)
    s.deploy()
    assert "s3cret-value" not in s.out.getvalue()
    assert all("s3cret-value" not in " ".join(c) for c in s.host.commands)


def test_prune_keeps_kept_releases_and_images(tmp_path: Path) -> None:
    host = FakeDockerHost()
    host.rules.insert(0, lambda a: (0, "1\n2\n3\n7\n") if a[:2] == ["ls", "-1"] else None)
    host.rules.insert(0, lambda a: (0, "r/shop/backend:aaaaaaa\nr/shop/backend:old1\n") if a[:3] == ["docker", "image", "ls"] else None)
    s = Setup(tmp_path, host)
    s.deployer.prune(SETTINGS)
    assert ["rm", "-rf", ".shipline/shop/releases/3"] in host.commands
    assert ["rm", "-rf", ".shipline/shop/releases/7"] in host.commands
    assert ["rm", "-rf", ".shipline/shop/releases/1"] not in host.commands
    assert ["docker", "image", "rm", "r/shop/backend:old1"] in host.commands


def test_choose_endpoint_uses_a_network_shared_with_the_proxy() -> None:
    nets = {"app_data": {"IPAddress": "10.1.0.2"}, "app_web": {"IPAddress": "10.2.0.3"}}
    assert choose_endpoint(nets, {"app_web"}, 8000) == "10.2.0.3:8000"
    assert choose_endpoint(nets, {"other"}, 8000) is None
