from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from shipline.config import load_project
from shipline.deployer import DeploySettings, HostDeployer, ReleaseFiles
from shipline.errors import DeployFailed
from shipline.plan import Trigger, compile_plan
from shipline.reporter import Reporter

from .fakes import FakeExecutor, state
from .projects import write_project

TRIGGER = Trigger(ref="main", sha="a" * 40, short_sha="aaaaaaa")
SETTINGS = DeploySettings(lock_ttl=600, lock_wait=0, keep=[2, 1], keep_images={"r/shop/backend:aaaaaaa"})


def deployer(tmp_path: Path, ex: FakeExecutor) -> tuple[HostDeployer, ReleaseFiles, StringIO]:
    project = load_project(write_project(tmp_path), env={})
    plan = compile_plan(project, TRIGGER, datetime.now(UTC))
    out = StringIO()
    files = ReleaseFiles(2, b"services: {}\n", plan.images, b"POSTGRES_PASSWORD='s3cret-value'\n",
                         {"actor": "ann", "short_sha": "aaaaaaa"})
    return HostDeployer(ex, plan.deploys[0], "shop", Reporter(Console(file=out), None)), files, out


def healthy_host(unhealthy_release: str | None = None, failing: str = "") -> FakeExecutor:
    """Every container healthy, except `failing`'s when started from `unhealthy_release`'s files."""
    def ps(argv: list[str]) -> tuple[int, str] | None:
        if "ps" in argv:
            svc = argv[-1]
            rel = next(a for a in argv if a.endswith("/.env")).split("/")[-2]
            return 0, f"{svc}-{rel}\n"
        return None

    def inspect(argv: list[str]) -> tuple[int, str] | None:
        if argv[:2] == ["docker", "inspect"]:
            cid = argv[-1]
            bad = cid == f"{failing}-{unhealthy_release}"
            return 0, state("running", "unhealthy" if bad else "healthy")
        return None

    return FakeExecutor([ps, inspect])


def ups(ex: FakeExecutor) -> list[tuple[str, str]]:
    """(service, release) for every `compose up`, in order."""
    out = []
    for c in ex.ran("up", "--no-deps"):
        rel = next(a for a in c if a.endswith("/.env")).split("/")[-2]
        out.append((c[-1], rel))
    return out


def test_rolls_out_in_order_after_migrating_and_uploads_env_0600(tmp_path: Path) -> None:
    ex = healthy_host()
    d, files, _ = deployer(tmp_path, ex)
    d.deploy(files, previous=1, settings=SETTINGS)
    assert ups(ex) == [("db", "2"), ("backend", "2"), ("frontend", "2"), ("proxy", "2")]
    run_index = ex.commands.index(ex.ran("run", "--rm")[0])
    backend_up = ex.commands.index(ex.ran("up", "backend")[0])
    assert run_index < backend_up
    assert ex.files[".shipline/shop/releases/2/.env"][1] == 0o600
    assert ex.files[".shipline/shop/current"][0] == b"2\n"
    assert ex.ran("rm", "-rf", ".shipline/shop/lock"), "lock released"


def test_unhealthy_service_puts_touched_services_back_on_the_previous_release(tmp_path: Path) -> None:
    ex = healthy_host(unhealthy_release="2", failing="backend")
    d, files, _ = deployer(tmp_path, ex)
    with pytest.raises(DeployFailed, match="Rolled back to release 1"):
        d.deploy(files, previous=1, settings=SETTINGS)
    assert ups(ex) == [("db", "2"), ("backend", "2"), ("db", "1"), ("backend", "1")]
    assert ".shipline/shop/current" not in ex.files
    assert ex.ran("rm", "-rf", ".shipline/shop/lock"), "lock released after failure"


def test_failed_migration_switches_nothing(tmp_path: Path) -> None:
    ex = healthy_host()
    ex.rules.insert(0, lambda a: (1, "relation exists") if "run" in a and "--rm" in a else None)
    d, files, _ = deployer(tmp_path, ex)
    with pytest.raises(DeployFailed, match="migration failed"):
        d.deploy(files, previous=1, settings=SETTINGS)
    assert [s for s, rel in ups(ex) if rel == "2"] == ["db"]  # dependencies only, never backend


def test_secret_never_reaches_the_output(tmp_path: Path) -> None:
    ex = healthy_host()
    d, files, out = deployer(tmp_path, ex)
    d.deploy(files, previous=1, settings=SETTINGS)
    assert "s3cret-value" not in out.getvalue()
    assert all("s3cret-value" not in " ".join(c) for c in ex.commands)


def test_prune_keeps_kept_releases_and_images(tmp_path: Path) -> None:
    ex = healthy_host()
    ex.rules.insert(0, lambda a: (0, "1\n2\n3\n7\n") if a[:2] == ["ls", "-1"] else None)
    ex.rules.insert(0, lambda a: (0, "r/shop/backend:aaaaaaa\nr/shop/backend:old1\n") if a[:3] == ["docker", "image", "ls"] else None)
    d, _, _ = deployer(tmp_path, ex)
    d.prune(SETTINGS)
    assert ["rm", "-rf", ".shipline/shop/releases/3"] in ex.commands
    assert ["rm", "-rf", ".shipline/shop/releases/7"] in ex.commands
    assert ["rm", "-rf", ".shipline/shop/releases/1"] not in ex.commands
    assert ["docker", "image", "rm", "r/shop/backend:old1"] in ex.commands
