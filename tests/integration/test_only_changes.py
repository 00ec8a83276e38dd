"""Only what changed is replaced: unchanged services keep their containers, the live commit is a no-op, and a
rollback to images already on the host switches under load without a failed request.

The example app goes through a sequence of commits; container IDs (from Docker, by Compose's labels) show
what was replaced, the build log what was built.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .stack import EXAMPLE, AppRepo, built, compose_down, git, read_testenv
from .test_zero_downtime import RATE, under_load

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def state() -> dict[str, object]:
    return {}


def containers(app: str) -> dict[str, set[str]]:
    """service -> IDs of its running containers."""
    out = subprocess.run(["docker", "ps", "--no-trunc", "--filter", f"label=com.docker.compose.project={app}",
                          "--filter", "label=com.docker.compose.oneoff=False", "--format",
                          '{{.ID}} {{.Label "com.docker.compose.service"}}'], capture_output=True, text=True, check=True)
    found: dict[str, set[str]] = {}
    for line in out.stdout.split("\n"):
        if line.strip():
            cid, svc = line.split()
            found.setdefault(svc, set()).add(cid)
    return found



def test_first_deploy(app_repo: AppRepo, state: dict[str, object]) -> None:
    res = app_repo.shipline("deploy")
    assert res.code == 0, res.out
    assert app_repo.wait_version(app_repo.head()) == app_repo.head()
    state["ids"] = containers(app_repo.app)
    assert set(state["ids"]) == {"proxy", "db", "backend", "frontend"}  # type: ignore[arg-type]


def test_backend_only_commit_keeps_every_other_container(app_repo: AppRepo, state: dict[str, object]) -> None:
    before: dict[str, set[str]] = state["ids"]  # type: ignore[assignment]
    app_repo.edit("backend/app/web.py", '"""HTTP layer', '# only-changes: backend\n"""HTTP layer')
    b = app_repo.commit("backend only")
    plan = app_repo.shipline("plan")
    assert "frontend: reuse" in plan.out and "backend: build" in plan.out
    res = app_repo.shipline("deploy")
    assert res.code == 0, res.out
    assert built(res.out) == {"backend"}
    assert app_repo.wait_version(b) == b
    after = containers(app_repo.app)
    assert after["frontend"] == before["frontend"], "the frontend's files did not change: its container stays"
    assert after["db"] == before["db"] and after["proxy"] == before["proxy"]
    assert after["backend"] != before["backend"] and len(after["backend"]) == 1
    assert re.search(r"frontend: unchanged", res.out), res.out
    state["ids"] = after


def test_readme_only_commit_builds_nothing_and_restarts_nothing(app_repo: AppRepo, state: dict[str, object]) -> None:
    (app_repo.path / "README.md").write_text("# documented\n")
    app_repo.commit("README only")
    res = app_repo.shipline("deploy")
    assert res.code == 0, res.out
    assert built(res.out) == set()
    assert containers(app_repo.app) == state["ids"]


def test_the_live_commit_again_is_already_live(app_repo: AppRepo, state: dict[str, object]) -> None:
    res = app_repo.shipline("deploy")
    assert res.code == 0, res.out
    assert "already live" in res.out
    assert built(res.out) == set()
    assert containers(app_repo.app) == state["ids"]


def test_rollback_under_load_fails_no_request(app_repo: AppRepo, state: dict[str, object]) -> None:
    code, out, result = under_load(app_repo, "rollback", "1")  # the first commit: another backend, same frontend
    assert code == 0, out
    assert result.total >= 0.5 * RATE, result.summary()
    assert result.failed == 0, f"{result.failures_by_kind()} {result.summary()}"
    assert "pulled 0 image(s), 2 already on the host" in out  # nothing is pulled: its images are there
    after = containers(app_repo.app)
    before: dict[str, set[str]] = state["ids"]  # type: ignore[assignment]
    assert after["frontend"] == before["frontend"] and after["backend"] != before["backend"]


# -- examples/monorepo: five services, one changes -----------------------------------------------------------


@pytest.fixture(scope="module")
def monorepo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppRepo]:
    app = f"mono{uuid.uuid4().hex[:8]}"
    example = EXAMPLE.parent / "monorepo"
    path = Path(tmp_path_factory.mktemp("mono")) / app
    shutil.copytree(example, path)
    text = (path / "shipline.yml").read_text().replace("app: monorepo", f"app: {app}", 1)
    (path / "shipline.yml").write_text(text)
    git(path, "init", "-q", "-b", "main")
    repo = AppRepo(path, app, 0, {**os.environ, **read_testenv()})
    repo.commit("initial")
    try:
        yield repo
    finally:
        compose_down(app)


def test_monorepo_one_service_changes_only_it_is_built_and_replaced(monorepo: AppRepo) -> None:
    first = monorepo.shipline("deploy")
    assert first.code == 0, first.out
    assert built(first.out) == {"api", "web", "admin", "worker", "docs"}
    before = containers(monorepo.app)
    assert len(before) == 5
    with (monorepo.path / "services" / "web" / "index.html").open("a") as f:
        f.write("<p>changed</p>\n")
    monorepo.commit("web only")
    res = monorepo.shipline("deploy")
    assert res.code == 0, res.out
    assert built(res.out) == {"web"}
    after = containers(monorepo.app)
    assert {svc for svc in before if after.get(svc) != before[svc]} == {"web"}
