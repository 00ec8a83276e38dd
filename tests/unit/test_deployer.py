from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from shipline import ledger
from shipline.deployer import MAKE_DIRS, HostDeployer
from shipline.errors import ConnectionLost, DeployFailed
from shipline.layout import HostLayout
from shipline.ledger import Record
from shipline.plan import Trigger, compile_plan
from shipline.project import load_project
from shipline.release_files import render
from shipline.reporter import Reporter
from shipline.strategies import RolloutHost
from shipline.strategies.base import Container, choose_endpoint

from .fakes import FakeDockerHost, FakeExecutor, FakeProxy
from .projects import PROXY, SHIPLINE, write_project

TRIGGER = Trigger(ref="main", sha="a" * 40, short_sha="aaaaaaa")
PROXIED = SHIPLINE + PROXY
APP = ".shipline/shop"


class Setup:
    def __init__(self, tmp_path: Path, host: FakeDockerHost, shipline: str = SHIPLINE, compose: str | None = None,
                 parallel: bool = False, clock: Callable[[], float] | None = None) -> None:
        project = load_project(write_project(tmp_path, shipline, **({"compose": compose} if compose else {})), env={})
        self.plan = compile_plan(project, TRIGGER, datetime.now(UTC))
        self.out = StringIO()
        self.proxy = FakeProxy()
        self.sleeps: list[float] = []
        self.host = host
        target = self.plan.deploy.targets[0]
        report = Reporter(Console(file=self.out, width=200))
        rollout_host = RolloutHost(host, "shop", target.layout, self.plan.deploy.proxy, report,
                                   sleep=self.sleeps.append, proxy_driver=self.proxy,
                                   clock=clock or (lambda: 0.0))  # frozen: a drain sleeps its whole time
        self.deployer = HostDeployer(host, target, self.plan.deploy, report, sleep=self.sleeps.append, host=rollout_host,
                                     parallel=parallel)
        self.root = tmp_path
        source = {path: (tmp_path / path).read_bytes() for path, _ in self.plan.deploy.uploads}
        self.files = render(self.plan.deploy, target, 2, self.plan.images, source,
                            {"POSTGRES_PASSWORD": "s3cret-value"}, {"actor": "ann"}, "/home/deploy")

    def deploy(self, previous: int | None = 1) -> None:
        d = self.deployer
        d.lock("ann", "aaaaaaa")
        try:
            d.upload(self.files)
            d.pull(self.plan.images, None)
            d.roll_out(2, previous)
            d.retire()
        finally:
            d.unlock()


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
    mkdirs = s.host.ran("sh", MAKE_DIRS)
    assert len(mkdirs) == 1 and mkdirs[0][4] == f"{APP}/releases/2", "the release directory is made 0700"
    env, mode = s.host.files[f"{APP}/releases/2/.env"]
    assert mode == 0o600 and b"SHIPLINE_PROXY_DIR=/home/deploy/.shipline/shop/proxy" in env
    up = s.host.ran("up", "backend")[0]
    assert up[up.index("--project-directory") + 1] == f"{APP}/releases/2/src", "paths start at the release's copy"
    assert up[up.index("--file") + 1] == f"{APP}/releases/2/src/docker-compose.prod.yml"
    assert s.host.files[f"{APP}/releases/2/src/docker-compose.prod.yml"][0] == (s.root / "docker-compose.prod.yml").read_bytes()
    assert s.host.released == 1, "lock released"


def test_recreate_failure_restores_touched_services_from_the_previous_release(tmp_path: Path) -> None:
    s = Setup(tmp_path, release_one(FakeDockerHost(lambda svc, rel: "unhealthy" if (svc, rel) == ("backend", "2") else "healthy")))
    with pytest.raises(DeployFailed, match="Release 1 is serving"):
        s.deploy()
    assert ups(s.host) == [("db", "2"), ("backend", "2"), ("backend", "1"), ("db", "1")]
    assert sorted(rel for _, rel in s.host.containers.values()) == ["1", "1", "1", "1"]
    assert s.host.released == 1, "lock released after failure"


def ticking(step: float) -> Callable[[], float]:
    """A clock that moves `step` seconds each time it is read: once per switch, then once when retiring."""
    now = [100.0 - step]

    def clock() -> float:
        now[0] += step
        return now[0]
    return clock


@pytest.mark.parametrize(("step", "sleeps"), [(0.5, [1.5]), (5.0, [])], ids=["part-left", "all-passed"])
def test_the_drain_counts_from_each_switch(tmp_path: Path, step: float, sleeps: list[float]) -> None:
    """`drain: 2` (the default): backend switched at 100, frontend at 100+step, retiring at 100+2*step; the old
    containers wait what is left of the later switch's drain, and nothing once it has passed."""
    s = Setup(tmp_path, release_one(FakeDockerHost()), PROXIED, clock=ticking(step))
    s.deploy()
    assert [svc for svc, _ in s.proxy.switches] == ["backend", "frontend"]
    assert s.sleeps == sleeps
    assert s.host.ran("docker", "stop"), "the old containers are stopped either way"
    assert ("drained (their drain time has passed since the switch)" in s.out.getvalue()) == (not sleeps)


def test_zero_downtime_starts_beside_switches_then_retires_old(tmp_path: Path) -> None:
    s = Setup(tmp_path, release_one(FakeDockerHost()), PROXIED)
    old_backend = s.host.ids("backend")
    s.deploy()
    assert ("backend", "2") in ups(s.host) and s.host.ran("--scale", "backend=2")
    assert [svc for svc, _ in s.proxy.switches] == ["backend", "frontend"]
    new_backend = [c for c in s.host.ids("backend") if c not in old_backend]
    assert s.proxy.routes["backend"] == [s.host.endpoint(new_backend[0], 8000)]
    assert s.sleeps == [2.0], "drained once, after every service was switched"
    stop = s.host.ran("docker", "stop")[0]
    assert stop[:4] == ["docker", "stop", "-t", "30"] and old_backend[0] in stop
    last_switch = max(i for i, c in enumerate(s.host.commands) if "--scale" in c)
    assert s.host.commands.index(stop) > last_switch
    assert {rel for svc, rel in s.host.containers.values() if svc in ("backend", "frontend")} == {"2"}
    override = s.host.files[f"{APP}/releases/2/shipline.override.yml"][0].decode()
    assert "dev.shipline.release: '2'" in override, "side-by-side containers say which release made them"


@pytest.mark.parametrize("failure", ["unhealthy", "crash"])
def test_zero_downtime_failure_switches_back_and_removes_new_containers(tmp_path: Path, failure: str) -> None:
    host = release_one(FakeDockerHost(lambda svc, rel: failure if (svc, rel) == ("frontend", "2") else "healthy"))
    s = Setup(tmp_path, host, PROXIED)
    old_backend = host.endpoint(host.ids("backend")[0], 8000)
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
            raise KeyboardInterrupt("SIGINT")

    s.proxy.switch = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        s.deploy()
    assert [svc for svc, _ in s.proxy.switches] == ["backend", "frontend", "frontend", "backend"]
    assert s.host.released == 1


def test_any_error_mid_rollout_is_undone_not_only_shiplines_own(tmp_path: Path) -> None:
    """A bug or an unexpected answer (here: a ValueError) must not leave the backend switched and the frontend not."""
    s = Setup(tmp_path, release_one(FakeDockerHost()), PROXIED)
    calls: list[str] = []

    def broken(service: str, endpoints: list[str]) -> None:
        calls.append(service)
        s.proxy.switches.append((service, endpoints))
        if service == "frontend" and calls.count("frontend") == 1:
            raise ValueError("unexpected answer from the proxy")

    s.proxy.switch = broken  # type: ignore[method-assign]
    with pytest.raises(DeployFailed, match="ValueError: unexpected answer"):
        s.deploy()
    assert [svc for svc, _ in s.proxy.switches][-1] == "backend", "the backend was switched back last"
    assert sorted(rel for _, rel in s.host.containers.values()) == ["1", "1", "1", "1"]


def test_a_second_ctrl_c_during_undo_waits_until_the_undo_is_done(tmp_path: Path) -> None:
    s = Setup(tmp_path, release_one(FakeDockerHost(lambda svc, rel: "unhealthy" if (svc, rel) == ("frontend", "2") else "healthy")),
              PROXIED)
    original = s.proxy.switch

    def impatient(service: str, endpoints: list[str]) -> None:
        if len(s.proxy.switches) == 1:  # the switch back: the user presses Ctrl-C, CI then sends SIGTERM
            s.deployer.cancel.request("interrupted by SIGINT")
            s.deployer.cancel.check()  # not acted on while the undo runs
        original(service, endpoints)

    s.proxy.switch = impatient  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt, match="SIGINT"):
        s.deploy()
    assert len(s.proxy.switches) == 2 and s.proxy.switches[1][0] == "backend", "the switch back completed"
    assert sorted(rel for _, rel in s.host.containers.values()) == ["1", "1", "1", "1"]
    assert s.host.released == 1


def test_a_cancel_between_steps_stops_the_rollout_and_undoes_it(tmp_path: Path) -> None:
    s = Setup(tmp_path, release_one(FakeDockerHost()), PROXIED)
    original = s.proxy.switch

    def then_cancel(service: str, endpoints: list[str]) -> None:
        original(service, endpoints)
        if service == "backend" and len(s.proxy.switches) == 1:
            s.deployer.cancel.request("interrupted by SIGTERM")  # as the CLI's signal handler does

    s.proxy.switch = then_cancel  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        s.deploy()
    assert [svc for svc, _ in s.proxy.switches] == ["backend", "backend"], "stopped before the frontend, switched back"


def test_a_failed_restore_does_not_claim_the_previous_release_serves(tmp_path: Path) -> None:
    host = release_one(FakeDockerHost(lambda svc, rel: "unhealthy" if svc == "backend" and rel in ("1", "2") and host.serial > 4 else "healthy"))
    s = Setup(tmp_path, host)
    with pytest.raises(DeployFailed) as failed:
        s.deploy()
    assert "is serving" not in failed.value.message
    assert "could not restore backend" in s.out.getvalue()


def test_a_dropped_connection_reconnects_takes_the_lock_again_and_undoes(tmp_path: Path) -> None:
    host = release_one(FakeDockerHost())
    s = Setup(tmp_path, host, PROXIED)
    host.drop_when = lambda argv: "up" in argv and "frontend" in argv
    with pytest.raises(DeployFailed, match="dropped") as failed:
        s.deploy()
    assert "Release 1 is serving" in failed.value.message
    assert host.reconnects == 1 and len(host.ran("shipline-lock")) == 2, "the lock was taken again before undoing"
    assert s.proxy.routes["backend"] == [host.endpoint(host.ids("backend")[0], 8000)]
    assert sorted(rel for _, rel in host.containers.values()) == ["1", "1", "1", "1"]
    assert s.sleeps[:1] == [1.0], "backoff before reconnecting"


def test_a_host_that_stays_unreachable_ends_with_its_own_status_and_no_undo(tmp_path: Path) -> None:
    host = release_one(FakeDockerHost())
    host.reconnect_ok = False
    s = Setup(tmp_path, host, PROXIED)
    host.drop_when = lambda argv: "up" in argv and "frontend" in argv
    with pytest.raises(ConnectionLost, match="stayed unreachable") as failed:
        s.deploy()
    assert "next `shipline deploy` repairs" in failed.value.message
    assert host.reconnects == 4 and s.sleeps[:4] == [1.0, 2.0, 4.0, 8.0]


def record(number: int, status: str) -> Record:
    return Record(number=number, app="shop", sha="a" * 40, short_sha="aaaaaaa", ref="main", source="cli", actor="bob",
                  status=status, started_at="2026-11-26T12:00:00+00:00")


def test_heal_marks_unfinished_releases_and_removes_what_never_went_live(tmp_path: Path) -> None:
    host = release_one(FakeDockerHost())
    s = Setup(tmp_path, host, PROXIED)
    host.files[f"{APP}/ledger.jsonl"] = (ledger.encode(record(1, "succeeded")) + ledger.encode(record(2, "running")), 0o644)
    serving_backend, serving_frontend = host.ids("backend")[0], host.ids("frontend")[0]
    s.proxy.routes = {"backend": [host.endpoint(serving_backend, 8000)], "frontend": [host.endpoint(serving_frontend, 8080)]}
    left = host._new("backend", "2")  # started by the killed release 2, never switched to
    s.deployer.read_ledger()
    repaired = s.deployer.heal(3)
    assert left not in host.containers and serving_backend in host.containers
    assert any("never finished: marked interrupted" in r for r in repaired)
    statuses = {r.number: r.status for r in ledger.decode(host.files[f"{APP}/ledger.jsonl"][0])}
    assert statuses == {1: "succeeded", 2: "interrupted"}
    assert s.proxy.switches == [], "what serves is not touched"


def test_heal_keeps_what_the_proxy_serves_even_from_the_interrupted_release(tmp_path: Path) -> None:
    """Killed just after switching the backend: the new backend serves, so the old one is the leftover."""
    host = release_one(FakeDockerHost())
    s = Setup(tmp_path, host, PROXIED)
    old = host.ids("backend")[0]
    new = host._new("backend", "2")
    s.proxy.routes = {"backend": [host.endpoint(new, 8000)], "frontend": [host.endpoint(host.ids("frontend")[0], 8080)]}
    s.deployer.read_ledger()
    s.deployer.heal(3)
    assert new in host.containers and old not in host.containers
    assert host.ran("docker", "stop") and s.proxy.switches == []


def test_prune_keeps_kept_releases_and_images(tmp_path: Path) -> None:
    host = FakeDockerHost()
    host.rules.insert(0, lambda a: (0, "1\n2\n3\n7\n") if a[:2] == ["ls", "-1"] else None)
    host.rules.insert(0, lambda a: (0, "r/shop/backend:aaaaaaa id1\nr/shop/backend:old1 id2\nr/shop/backend:<none> id3\n")
                      if a[:3] == ["docker", "image", "ls"] else None)
    s = Setup(tmp_path, host)
    s.deployer.prune({1, 2}, {"r/shop/backend:aaaaaaa"})
    assert host.ran("rm", "-rf") == [["rm", "-rf", f"{APP}/releases/3", f"{APP}/releases/7"]]
    assert ["docker", "image", "rm", "r/shop/backend:old1", "id3"] in host.commands


def test_pull_records_the_digest_each_image_had(tmp_path: Path) -> None:
    s = Setup(tmp_path, FakeDockerHost())
    digests = s.deployer.pull(s.plan.images, None)
    assert digests == {"backend": "sha256:" + "d" * 64, "frontend": "sha256:" + "d" * 64}


def test_secret_never_reaches_the_output_or_a_repr(tmp_path: Path) -> None:
    s = Setup(tmp_path, release_one(FakeDockerHost()), PROXIED)
    s.deploy()
    assert "s3cret-value" not in s.out.getvalue()
    assert all("s3cret-value" not in " ".join(c) for c in s.host.commands)
    assert "s3cret" not in repr(s.files) and "s3cret" not in str(s.files)


def test_choose_endpoint_uses_a_network_shared_with_the_proxy() -> None:
    nets = {"app_data": {"IPAddress": "10.1.0.2"}, "app_web": {"IPAddress": "10.2.0.3"}}
    assert choose_endpoint(nets, {"app_web"}, 8000) == "10.2.0.3:8000"
    assert choose_endpoint(nets, {"other"}, 8000) is None


JOB_COMPOSE = """\
services:
  db: {image: postgres:15}
  migrate:
    build: ./backend
    command: [python, -m, app.migrate]
    depends_on: {db: {condition: service_healthy}}
  backend:
    build: ./backend
    depends_on:
      migrate: {condition: service_completed_successfully}
  frontend: {build: ./frontend}
"""


def job_setup(tmp_path: Path, host: FakeDockerHost) -> Setup:
    write_project(tmp_path, compose=JOB_COMPOSE)
    shipline = SHIPLINE.replace("  frontend: {context: frontend}", "  frontend: {context: frontend}\n  migrate: {context: backend}")
    return Setup(tmp_path, host, shipline, compose=JOB_COMPOSE)


def test_a_one_shot_job_runs_afresh_to_completion_before_what_waits_for_it(tmp_path: Path) -> None:
    host = FakeDockerHost(lambda svc, rel: "exit:0" if svc == "migrate" else "healthy")
    s = job_setup(tmp_path, host)
    host._new("migrate", "2")  # the same definition already ran: it runs again all the same
    s.deploy()
    run = host.ran("up", "--force-recreate", "migrate")
    assert run and host.commands.index(run[0]) < host.commands.index(host.ran("up", "backend")[0])
    assert "migrate completed (exit status 0)" in s.out.getvalue()


def test_a_failing_job_fails_the_deploy_with_its_last_lines_and_starts_nothing_after(tmp_path: Path) -> None:
    host = FakeDockerHost(lambda svc, rel: "exit:3" if svc == "migrate" else "healthy")
    s = job_setup(tmp_path, host)
    with pytest.raises(DeployFailed, match=r"migrate did not complete: it exited with status 3\. Its last lines:") as info:
        s.deploy()
    assert "relation already exists" in info.value.message
    assert not host.ran("up", "backend")


def test_each_release_is_called_as_it_was_deployed_even_one_from_before_compose_json(tmp_path: Path) -> None:
    s = Setup(tmp_path, release_one(FakeDockerHost()))
    s.deployer.upload(s.files)
    new = s.deployer.host.compose_base(2)
    assert new[new.index("--project-directory") + 1] == f"{APP}/releases/2/src"
    old = s.deployer.host.compose_base(1)  # release 1 predates compose.json: one Compose file, paths from data/
    assert old == ["docker", "compose", "--project-name", "shop", "--project-directory", f"{APP}/data",
                   "--file", f"{APP}/releases/1/docker-compose.yml", "--file", f"{APP}/releases/1/shipline.override.yml",
                   "--env-file", f"{APP}/releases/1/.env"]


def test_upload_makes_the_releases_directories_and_the_data_directories_first(tmp_path: Path) -> None:
    (tmp_path / "nginx.conf").write_text("events {}\n")
    s = Setup(tmp_path, FakeDockerHost(), compose=COMPOSE_WITH_DATA)
    s.deployer.upload(s.files)
    [mkdirs] = s.host.ran("sh", MAKE_DIRS)
    assert f"{APP}/data/uploads" in mkdirs and f"{APP}/data/acme.json" not in mkdirs
    assert [f"{APP}/releases/2/src"] == [d for d in mkdirs if d.endswith("/src")]
    assert s.host.files[f"{APP}/releases/2/src/nginx.conf"] == (b"events {}\n", 0o644)


COMPOSE_WITH_DATA = """\
services:
  proxy: {image: nginx, volumes: [./nginx.conf:/etc/nginx/nginx.conf:ro, ./uploads:/uploads, ./acme.json:/acme.json]}
  backend: {build: ./backend}
  frontend: {build: ./frontend}
  db: {image: postgres:15}
"""


# -- only what changed, in waves ---------------------------------------------------------------------------


def test_independent_services_roll_out_together_in_threads(tmp_path: Path) -> None:
    s = Setup(tmp_path, release_one(FakeDockerHost()), PROXIED, parallel=True)
    s.deploy()
    assert sorted(svc for svc, _ in s.proxy.switches) == ["backend", "frontend"]
    assert "backend, frontend together" in s.out.getvalue()
    migrate = s.host.commands.index(s.host.ran("run", "--rm")[0])
    assert migrate < min(s.host.commands.index(c) for c in s.host.ran("--scale")), "the migration runs before the wave"
    assert {rel for svc, rel in s.host.containers.values() if svc in ("backend", "frontend")} == {"2"}


def test_a_failure_in_a_wave_undoes_every_service_of_it(tmp_path: Path) -> None:
    host = release_one(FakeDockerHost(lambda svc, rel: "unhealthy" if (svc, rel) == ("frontend", "2") else "healthy"))
    s = Setup(tmp_path, host, PROXIED, parallel=True)
    with pytest.raises(DeployFailed, match="frontend did not become healthy"):
        s.deploy()
    assert sorted(rel for _, rel in host.containers.values()) == ["1", "1", "1", "1"]
    backend_switches = [e for svc, e in s.proxy.switches if svc == "backend"]
    assert not backend_switches or backend_switches[-1] == [host.endpoint(host.ids("backend")[0], 8000)]
    assert host.released == 1


def test_services_kept_are_not_touched(tmp_path: Path) -> None:
    s = Setup(tmp_path, release_one(FakeDockerHost()), PROXIED)
    d = s.deployer
    d.lock("ann", "aaaaaaa")
    d.upload(s.files)
    d.roll_out(2, 1, keep={"proxy", "db", "frontend"})
    d.retire()
    assert ups(s.host) == [("backend", "2")]
    assert [svc for svc, _ in s.proxy.switches] == ["backend"]


def test_pull_skips_images_already_on_the_host(tmp_path: Path) -> None:
    host = FakeDockerHost()
    s = Setup(tmp_path, host)
    present = s.plan.images["frontend"]
    host.rules.insert(0, lambda a: (1, f'["{present}"] sha256:f1\nError: No such image: x\n')
                      if a[:3] == ["docker", "image", "inspect"] and "{{json .RepoTags}} {{.Id}}" in a else None)
    s.deployer.pull(s.plan.images, None)
    assert [c[-1] for c in host.ran("docker", "pull")] == [s.plan.images["backend"]]
    assert "pulled 1 image(s), 1 already on the host" in s.out.getvalue()


def test_unchanged_compares_with_the_live_release_and_what_really_runs(tmp_path: Path) -> None:
    from shipline.changes import ServiceState

    host = FakeDockerHost()
    s = Setup(tmp_path, host, PROXIED)
    same, other = ServiceState("sha256:i1", "d1", ""), ServiceState("sha256:i2", "d1", "")
    live = replace(record(1, "succeeded"), services={svc: same.as_dict() for svc in ("proxy", "db", "backend", "frontend")})
    host.files[f"{APP}/ledger.jsonl"] = (ledger.encode(live), 0o644)
    running = "c-proxy proxy \nc-db db \nc-back backend 1\nc-front frontend 7\n"  # frontend: made by release 7
    host.rules.insert(0, lambda a: (0, running) if a[:2] == ["docker", "ps"] and "--format" in a else None)
    host.rules.insert(0, lambda a: (0, "c-proxy sha256:i1\nc-db sha256:i1\nc-back sha256:i1\nc-front sha256:i1\n")
                      if a[:3] == ["docker", "inspect", "--format"] and a[3] == "{{.Id}} {{.Image}}" else None)
    s.deployer.read_ledger()
    keep = s.deployer.unchanged({"proxy": same, "db": same, "backend": other, "frontend": same})
    assert keep == {"proxy", "db"}
    out = s.out.getvalue()
    assert "backend: image changed" in out and "db: unchanged (same image, definition and files as release 1)" in out
    assert "frontend: its running container is not the live release's" in out  # release 7 recorded no such state


def test_one_docker_ps_finds_each_services_containers_and_the_stopped_one_offs() -> None:
    listing = ("aaa running False backend 3\n"
               "bbb exited False backend 4\n"
               "ccc running False db \n"           # started by Compose itself: no release label
               "ddd exited True backend \n"        # a killed migration's container
               "eee created True backend \n"
               "fff running True backend \n")      # a migration still running: not ours to remove
    host = FakeExecutor([lambda argv: (0, listing) if argv[:2] == ["docker", "ps"] else None])
    rollout = RolloutHost(host, "shop", HostLayout(".shipline", "shop"), None, Reporter(Console(file=StringIO())))
    services, oneoffs = rollout.labelled()
    assert services == {"backend": [Container("aaa", True, 3), Container("bbb", False, 4)],
                        "db": [Container("ccc", True, None)]}
    assert oneoffs == ["ddd", "eee"]
    assert len(host.commands) == 1
