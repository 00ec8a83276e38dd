"""Several hosts: batches, roles and the batch runner's order and undo, without Docker (scripted hosts)."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from shipline.errors import ConfigError, ConnectionLost, DeployFailed
from shipline.fleet import Rollout
from shipline.ledger import Record
from shipline.plan import DeployPlan, Trigger, batches, compile_plan, deploy_plan
from shipline.project import load_project
from shipline.reporter import Reporter

from .projects import SHIPLINE, write_project

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKcW1x4Z1Rk9E3q2n0b7oJm1fQ7b0v9Xx9cQW3+e3q1Z"
THREE = SHIPLINE.replace(
    f"hosts:\n  - address: deploy@127.0.0.1:2222\n    host_key: {KEY}\n",
    "hosts:\n" + "".join(f"  - {{address: deploy@203.0.113.{i}, host_key: '{KEY}', roles: [{r}]}}\n"
                         for i, r in ((1, "db, web"), (2, "web"), (3, "web")))
    + "roles: {db: [db], web: [proxy, backend, frontend]}\n")


def test_batches_by_count_or_percentage_rounded_up() -> None:
    assert batches(3, 1) == ((0,), (1,), (2,))
    assert batches(5, 2) == ((0, 1), (2, 3), (4,))
    assert batches(4, "50%") == ((0, 1), (2, 3))
    assert batches(3, "10%") == ((0,), (1,), (2,))
    assert batches(3, "100%") == ((0, 1, 2),)


def test_roles_choose_each_hosts_services_and_migrations_run_on_one(tmp_path: Path) -> None:
    plan = deploy_plan(load_project(write_project(tmp_path, THREE.replace("deploy:\n", "deploy:\n  batch: 2\n")), env={}))
    assert [[r.service for r in t.rollout] for t in plan.targets] == [
        ["db", "backend", "frontend", "proxy"], ["backend", "frontend", "proxy"], ["backend", "frontend", "proxy"]]
    assert plan.migration_host == 0
    assert plan.batches == ((0, 1), (2,))


@pytest.mark.parametrize(("edit", "problem"), [
    ("roles: {db: [db], web: [proxy, backend, frontend]}", "roles: {db: [database], web: [proxy, backend, frontend]}"),
    ("roles: [web]}", "roles: [www]}"),
    ("roles: {db: [db], web: [proxy, backend, frontend]}", "roles: {db: [db], web: [proxy, backend]}"),
])
def test_roles_that_name_nothing_or_leave_a_service_nowhere_are_refused(tmp_path: Path, edit: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_project(write_project(tmp_path, THREE.replace(edit, problem, 1)), env={})
    text = str(err.value)
    assert any(s in text for s in ("no service 'database'", "no role 'www'", "no host runs frontend")), text


def test_batch_must_be_a_count_or_a_percentage(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"deploy\.batch"):
        load_project(write_project(tmp_path, SHIPLINE.replace("deploy:\n", "deploy:\n  batch: half\n")), env={})


class Host:
    """What the batch runner uses of a HostDeployer, scripted: `fails` makes its roll_out raise."""

    def __init__(self, name: str, log: list[str], fails: BaseException | None = None, confirm_fails: bool = False) -> None:
        self.name, self.log, self.fails, self.confirm_fails = name, log, fails, confirm_fails
        self.applied: list[str] = []
        self.undone = False
        self.pending: Record | None = None
        self.report = Reporter(Console(file=StringIO()))

    def live(self) -> None:
        return None

    def prepare(self, number: int, put_files: object, images: dict[str, str], login: object
                ) -> tuple[dict[str, str], dict[str, str], dict[str, object]]:
        self.log.append(f"pull {self.name}")
        return {}, {}, {}

    def unchanged(self, states: dict[str, object]) -> set[str]:
        return set()

    def roll_out(self, number: int, previous: int | None, keep: set[str] = frozenset(), *,  # type: ignore[assignment]
                 migrate: bool = True) -> None:
        self.log.append(f"roll {self.name}" + (" +migrate" if migrate else ""))
        self.applied = ["backend"]
        if self.fails is not None:
            self.undone = True  # HostDeployer.roll_out undoes its own host before raising
            raise self.fails

    def confirm(self) -> None:
        if self.confirm_fails:
            raise DeployFailed(f"{self.name}: backend did not become healthy: container exited")

    def undo(self, previous: int | None) -> bool:
        self.log.append(f"undo {self.name}")
        self.undone = True
        return True

    def retire(self) -> None:
        self.log.append(f"retire {self.name}")


def rollout(tmp_path: Path, hosts: list[Host], batch: str = "1", wait: float = 0) -> tuple[Rollout, list[float]]:
    config = THREE.replace("deploy:\n", f"deploy:\n  batch: {batch}\n  batch_wait: {wait}\n")
    plan: DeployPlan = deploy_plan(load_project(write_project(tmp_path, config), env={}))
    sleeps: list[float] = []
    r = Rollout(hosts, plan, Reporter(Console(file=StringIO())), sleep=sleeps.append)  # type: ignore[arg-type]
    record = Record(number=2, app="shop", sha="a" * 40, short_sha="aaaaaaa", ref="main", source="cli", actor="t",
                    status="running", started_at="now")
    r.prepare(record, lambda h: {}, {"backend": "r/backend:aaaaaaa"}, None)
    return r, sleeps


def test_hosts_switch_batch_after_batch_migrating_once_then_retire(tmp_path: Path) -> None:
    log: list[str] = []
    hosts = [Host(f"h{i}", log) for i in (1, 2, 3)]
    r, sleeps = rollout(tmp_path, hosts, wait=5)
    r.switch(2)
    r.retire()
    assert log[:3] == ["pull h1", "pull h2", "pull h3"] or sorted(log[:3]) == ["pull h1", "pull h2", "pull h3"]
    assert log[3:6] == ["roll h1 +migrate", "roll h2", "roll h3"]
    assert sorted(log[6:]) == ["retire h1", "retire h2", "retire h3"]
    assert sleeps == [5, 5], "batch_wait after every batch but the last"


def test_a_failure_in_the_second_batch_switches_the_first_back_and_skips_the_rest(tmp_path: Path) -> None:
    log: list[str] = []
    hosts = [Host("h1", log), Host("h2", log, DeployFailed("h2: backend did not become healthy")), Host("h3", log)]
    r, _ = rollout(tmp_path, hosts)
    with pytest.raises(DeployFailed, match="Hosts that had switched went back"):
        r.switch(2)
    assert "undo h1" in log and "roll h3" not in log and "undo h2" not in log  # h2 undid itself


def test_a_crash_after_the_switch_fails_the_barrier_and_undoes_the_batch(tmp_path: Path) -> None:
    log: list[str] = []
    hosts = [Host("h1", log, confirm_fails=True), Host("h2", log), Host("h3", log)]
    r, _ = rollout(tmp_path, hosts)
    with pytest.raises(DeployFailed, match="container exited"):
        r.switch(2)
    assert log[-1] == "undo h1" and "roll h2" not in log


def test_a_lost_host_and_an_interrupt_still_undo_the_others_and_keep_their_kind(tmp_path: Path) -> None:
    for error in (ConnectionLost("h2: unreachable"), KeyboardInterrupt("SIGTERM")):
        log: list[str] = []
        r, _ = rollout(tmp_path, [Host("h1", log), Host("h2", log, error), Host("h3", log)], batch="1")
        with pytest.raises(type(error)):
            r.switch(2)
        assert "undo h1" in log


def test_the_plan_says_batches_and_where_migrations_run(tmp_path: Path) -> None:
    trigger = Trigger(ref="main", sha="a" * 40, short_sha="aaaaaaa")
    text = compile_plan(load_project(write_project(tmp_path, THREE), env={}), trigger, datetime.now(UTC)).render()
    assert ("batch 1 (canary): deploy@203.0.113.1; batch 2 (then): deploy@203.0.113.2; "
            "batch 3 (then): deploy@203.0.113.3") in text
    assert text.count("migrate first (once, on this host only)") == 1
    assert "A failure anywhere switches every host back" in text
