import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from shipline import ledger, pipeline
from shipline.deployer import HostDeployer
from shipline.errors import ConfigError, DeployFailed, HostKeyError, NotFound
from shipline.ledger import Record
from shipline.plan import Trigger, compile_plan
from shipline.project import Project, load_project
from shipline.reporter import Reporter

from .fakes import FakeDockerHost
from .projects import write_project


def rec(number: int, status: str = "succeeded", sha: str = "a") -> Record:
    return Record(number=number, app="shop", sha=sha * 40, short_sha=sha * 7, ref="main", source="cli", actor="ann",
                  status=status, started_at="2026-11-26T12:00:00+00:00", images={"backend": f"r/shop/backend:{sha * 7}"})


def fleet(tmp_path: Path, ledgers: list[list[Record]], dirs: list[str] = ()) -> tuple[pipeline.Context, list[HostDeployer]]:  # type: ignore[assignment]
    project = load_project(write_project(tmp_path), env={})
    plan = compile_plan(project, Trigger("main", "b" * 40, "bbbbbbb"), datetime.now(UTC)).deploy
    report = Reporter(Console(file=StringIO()))
    ctx = pipeline.Context(env={}, report=report, connect=lambda i, t: FakeDockerHost())
    hosts = []
    for i, records in enumerate(ledgers):
        host = FakeDockerHost()
        host.name = f"h{i}"
        host.files[".shipline/shop/ledger.jsonl"] = (b"".join(ledger.encode(r) for r in records), 0o644)
        host.rules.insert(0, lambda a, d=dirs: (0, "".join(f"{n}\n" for n in d)) if a[:2] == ["ls", "-1"] else None)
        hosts.append(HostDeployer(host, plan.targets[0], plan, report, sleep=lambda s: None))
        hosts[-1].read_ledger()  # as pipeline.locked_hosts does under the locks
    return ctx, hosts


def host_ledger(h: HostDeployer) -> list[Record]:
    return ledger.decode(h.ex.read(".shipline/shop/ledger.jsonl"))


def test_the_number_is_above_every_host_and_every_release_directory(tmp_path: Path) -> None:
    ctx, hosts = fleet(tmp_path, [[rec(1), rec(4)], [rec(1), rec(6, "failed")]], dirs=["9"])
    started = pipeline.begin(ctx, hosts, lambda n: rec(n, "running", "b"))
    assert started.number == 10
    for h in hosts:
        assert host_ledger(h)[-1] == started


def test_begin_heals_unfinished_releases_on_every_host(tmp_path: Path) -> None:
    ctx, hosts = fleet(tmp_path, [[rec(1), rec(2, "running")], [rec(1), rec(2, "running")]])
    pipeline.begin(ctx, hosts, lambda n: rec(n, "running", "b"))
    for h in hosts:
        two = next(r for r in host_ledger(h) if r.number == 2)
        assert two.status == "interrupted" and "found by release 3" in two.reason


@pytest.mark.parametrize(("error", "status", "reason"), [
    (DeployFailed("backend did not become healthy"), "failed", "backend did not become healthy"),
    (KeyboardInterrupt("interrupted by SIGTERM"), "interrupted", "interrupted by SIGTERM"),
    (ValueError("a bug"), "failed", "ValueError: a bug"),
])
def test_every_ending_is_recorded_on_every_host(tmp_path: Path, error: BaseException, status: str, reason: str) -> None:
    ctx, hosts = fleet(tmp_path, [[rec(1)], [rec(1)]])
    started = pipeline.begin(ctx, hosts, lambda n: rec(n, "running", "b"))
    with pytest.raises(type(error)), pipeline.recorded(ctx, hosts, started):
        raise error
    for h in hosts:
        last = host_ledger(h)[-1]
        assert (last.number, last.status, last.reason) == (2, status, reason) and last.finished_at


def test_a_host_that_went_live_before_another_failed_records_success(tmp_path: Path) -> None:
    ctx, hosts = fleet(tmp_path, [[rec(1)], [rec(1)]])
    started = pipeline.begin(ctx, hosts, lambda n: rec(n, "running", "b"))
    with pytest.raises(DeployFailed), pipeline.recorded(ctx, hosts, started) as live:
        live.add(hosts[0].name)
        raise DeployFailed("h1 failed")
    assert [host_ledger(h)[-1].status for h in hosts] == ["succeeded", "failed"]


def test_rollback_goes_to_the_newest_success_of_another_commit_or_the_one_named() -> None:
    history = ledger.merge({"h": [rec(1, sha="a"), rec(2, "failed", "b"), rec(3, sha="c"), rec(4, sha="c")]})
    assert pipeline.choose_rollback(history, None).record.number == 1
    assert pipeline.choose_rollback(history, 3).record.number == 3
    with pytest.raises(NotFound, match="did not succeed"):
        pipeline.choose_rollback(history, 2)
    with pytest.raises(NotFound, match="does not exist"):
        pipeline.choose_rollback(history, 9)
    with pytest.raises(NotFound, match="only successful release"):
        pipeline.choose_rollback(ledger.merge({"h": [rec(1)]}), None)


def test_prune_keeps_the_newest_successes_whoever_made_them(tmp_path: Path) -> None:
    ctx, hosts = fleet(tmp_path, [[rec(1, sha="a"), rec(2, sha="b"), rec(3, "failed", "c"), rec(4, sha="d"), rec(5, "running", "e")]],
                       dirs=["1", "2", "3", "4", "5"])
    tags = "".join(f"r/shop/backend:{c * 7} id{c}\n" for c in "abcde")
    hosts[0].ex.rules.insert(0, lambda a: (0, tags) if a[:3] == ["docker", "image", "ls"] else None)  # type: ignore[attr-defined]
    pipeline.prune(ctx, hosts, hosts[0].plan)
    removed = [c[-1] for c in hosts[0].ex.ran("rm", "-rf")]  # type: ignore[attr-defined]
    assert removed == [".shipline/shop/releases/3"]  # keep_releases 5: 1, 2, 4 kept; 5 is under way
    # the running release's images too: pruning runs while the release retires its old containers
    assert hosts[0].ex.ran("docker", "image", "rm") == [["docker", "image", "rm", "r/shop/backend:ccccccc"]]  # type: ignore[attr-defined]


def test_prune_counts_the_release_going_live_as_one_of_the_kept(tmp_path: Path) -> None:
    """While a release retires its old containers it is not recorded yet: it counts as succeeded, so the host keeps
    exactly keep_releases releases once it is."""
    ctx, hosts = fleet(tmp_path, [[rec(n, sha=c) for n, c in zip(range(1, 6), "abcde", strict=True)] + [rec(6, "running", "f")]],
                       dirs=["1", "2", "3", "4", "5", "6"])
    pipeline.prune(ctx, hosts, hosts[0].plan, live=6)
    assert [c[-1] for c in hosts[0].ex.ran("rm", "-rf")] == [".shipline/shop/releases/1"]  # type: ignore[attr-defined]


def test_already_live_needs_the_same_commit_files_images_and_every_service_running(tmp_path: Path) -> None:
    from dataclasses import replace

    from shipline.release_files import render
    from shipline.secrets import Secret

    from .test_inputs import git

    project = load_project(write_project(tmp_path), env={})
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "one")
    sha = git(tmp_path, "rev-parse", "HEAD")
    plan = compile_plan(project, Trigger("main", sha, sha[:7]), datetime.now(UTC))
    secrets = {"POSTGRES_PASSWORD": Secret("POSTGRES_PASSWORD", "pw-1234")}
    host = FakeDockerHost()
    running = "".join(f"c{i} {svc} \n" for i, svc in enumerate(("proxy", "db", "backend", "frontend")))
    host.rules.insert(0, lambda a: (0, running) if a[:2] == ["docker", "ps"] and "--format" in a else None)
    target = plan.deploy.targets[0]
    source = {path: (tmp_path / path).read_bytes() for path, _ in plan.deploy.uploads}
    files = render(plan.deploy, target, 3, plan.images, source, {"POSTGRES_PASSWORD": "pw-1234"}, {}, "/home/deploy").digests()
    live = replace(rec(3), sha=sha, images=dict(plan.images), files=files)
    h = HostDeployer(host, target, plan.deploy, Reporter(Console(file=StringIO())), sleep=lambda s: None)
    h.ledger = [live]
    assert pipeline.already_live(plan, [h], secrets) == live
    assert pipeline.already_live(plan, [h], {"POSTGRES_PASSWORD": Secret("POSTGRES_PASSWORD", "pw-5678")}) is None
    h.ledger = [replace(live, sha="c" * 40)]
    assert pipeline.already_live(plan, [h], secrets) is None
    h.ledger = [live]
    host.rules.insert(0, lambda a: (0, "c0 proxy \nc1 db \n") if a[:2] == ["docker", "ps"] and "--format" in a else None)
    assert pipeline.already_live(plan, [h], secrets) is None, "a service that is not running needs a deploy"


class Steps:
    """checkout, build_images and run_tests of `pipeline`, replaced: each logs, a build can be held running."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        self.log: list[str] = []
        self.building = threading.Event()
        self.hold_build = False

        def checkout(ctx: pipeline.Context, plan: object) -> Path:
            self.log.append("checkout")
            return tmp_path

        def build_images(ctx: pipeline.Context, plan: object, workspace: Path, **kw: object) -> None:
            self.log.append("build")
            self.building.set()
            while self.hold_build:
                ctx.cancel.sleep(0.01)  # a build command, killed when its run is cancelled

        monkeypatch.setattr(pipeline, "checkout", checkout)
        monkeypatch.setattr(pipeline, "build_images", build_images)
        monkeypatch.setattr(pipeline, "run_tests", lambda ctx, plan, workspace: self.log.append("test"))


def local_work(tmp_path: Path, *, builds: bool = True) -> pipeline.LocalWork:
    project = load_project(write_project(tmp_path / "p"), env={})
    plan = compile_plan(project, Trigger("main", "b" * 40, "bbbbbbb"), datetime.now(UTC))
    if not builds:
        plan = replace(plan, builds=())
    ctx = pipeline.Context(env={}, report=Reporter(Console(file=StringIO())), connect=lambda i, t: FakeDockerHost())
    return pipeline.LocalWork(ctx, plan, {}, build=True)


def test_local_work_builds_at_once_but_tests_only_once_the_hosts_said_go(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    steps = Steps(monkeypatch, tmp_path)
    work = local_work(tmp_path)
    work.start()
    assert work.checked_out() == tmp_path
    steps.building.wait(5)
    time.sleep(0.2)
    assert steps.log == ["checkout", "build"], "no test before the hosts said the commit is not live"
    work.tests_may_run()
    work.result()
    assert steps.log == ["checkout", "build", "test"]
    work.stop()


def test_stopping_local_work_kills_a_running_build_and_runs_no_test(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    steps = Steps(monkeypatch, tmp_path)
    steps.hold_build = True
    work = local_work(tmp_path)
    work.start()
    assert steps.building.wait(5)
    work.stop()  # the deploy failed (or the commit is live already) while building
    assert steps.log == ["checkout", "build"]
    assert work.cancel.requested


def test_already_live_ends_local_work_with_nothing_to_build_without_cancelling(monkeypatch: pytest.MonkeyPatch,
                                                                               tmp_path: Path) -> None:
    steps = Steps(monkeypatch, tmp_path)
    work = local_work(tmp_path, builds=False)
    work.start()
    steps.building.wait(5)
    work.stop()
    assert steps.log == ["checkout", "build"] and not work.cancel.requested


class Closing(FakeDockerHost):
    def __init__(self, closed: list[int], index: int) -> None:
        super().__init__()
        self.closed, self.index = closed, index

    def close(self) -> None:
        self.closed.append(self.index)


def compiling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compiled: Callable[[], object],
              connect: Callable[[int, object], FakeDockerHost]) -> tuple[pipeline.Context, Project]:
    """`compile_for` replaced by one that waits for the hosts' connections to have started, then `compiled()`."""
    project = load_project(write_project(tmp_path), env={})
    started = threading.Event()

    def compile_for(ctx: pipeline.Context, project: Project, trigger: Trigger, **kw: object) -> object:
        assert started.wait(5), "the hosts are connected while the plan compiles, not after"
        return compiled()

    def connecting(i: int, target: object) -> FakeDockerHost:
        started.set()
        return connect(i, target)

    monkeypatch.setattr(pipeline, "compile_for", compile_for)
    return pipeline.Context(env={}, report=Reporter(Console(file=StringIO())), connect=connecting), project


def test_the_plan_compiles_while_the_hosts_connect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[int] = []
    ctx, project = compiling(tmp_path, monkeypatch, lambda: "the plan", lambda i, t: Closing(closed, i))
    plan, executors = pipeline.compile_connected(ctx, project, Trigger("main", "b" * 40, "bbbbbbb"))
    assert plan == "the plan" and [e.index for e in executors] == [0] and closed == []  # type: ignore[attr-defined]
    assert "connect" in ctx.report.durations


def test_a_plan_that_fails_closes_the_connections_made_meanwhile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[int] = []

    def broken() -> object:
        raise ConfigError(["shipline.yml: build.backend.context: no such directory"])

    ctx, project = compiling(tmp_path, monkeypatch, broken, lambda i, t: Closing(closed, i))
    with pytest.raises(ConfigError):
        pipeline.compile_connected(ctx, project, Trigger("main", "b" * 40, "bbbbbbb"))
    assert closed == [0]


def test_a_host_that_cannot_be_reached_fails_once_the_plan_is_compiled(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(i: int, target: object) -> FakeDockerHost:
        raise HostKeyError("deploy@h: the host key differs from the pinned one")

    ctx, project = compiling(tmp_path, monkeypatch, lambda: "the plan", refuse)
    with pytest.raises(HostKeyError, match="pinned"):
        pipeline.compile_connected(ctx, project, Trigger("main", "b" * 40, "bbbbbbb"))
