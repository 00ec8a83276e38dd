"""Releases live on the server: two checkouts (one a fresh clone with no local state, as a CI runner has) deploy the
same app alternately, and see one history, one numbering, one retention; the database's data stays put.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from .stack import AppRepo, compose_down, git, make_app_repo

pytestmark = pytest.mark.integration
SECRET = "it-secret-Zq7wX9"  # what make_app_repo writes into the first checkout's .shipline/secrets


@pytest.fixture(scope="module")
def clones(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AppRepo, AppRepo]]:
    app = f"rh{uuid.uuid4().hex[:8]}"
    a = make_app_repo(Path(tmp_path_factory.mktemp("laptop")), app)
    compose = a.path / "docker-compose.prod.yml"
    doc = yaml.safe_load(compose.read_text())
    doc["services"]["db"]["volumes"] = ["./pgdata:/var/lib/postgresql/data"]  # a relative bind mount, as many teams write it
    del doc["volumes"]
    compose.write_text(yaml.safe_dump(doc, sort_keys=False))
    a.edit("shipline.yml", "  keep_releases: 5", "  keep_releases: 2")
    a.commit("database in ./pgdata; keep two releases")
    ci = tmp_path_factory.mktemp("ci") / app
    subprocess.run(["git", "clone", "-q", str(a.path), str(ci)], check=True)
    # The CI runner's clone: no .shipline/ directory at all; the secret comes from the environment.
    b = AppRepo(ci, app, a.port, {**a.env, "POSTGRES_PASSWORD": SECRET})
    try:
        yield a, b
    finally:
        compose_down(app)
        subprocess.run(["docker", "run", "--rm", "-v", "/home/deploy/.shipline:/d", "busybox:1.35", "rm", "-rf", f"/d/{app}"],
                       capture_output=True, check=False)


def untracked(repo: AppRepo) -> str:
    return git(repo.path, "status", "--porcelain", "--ignored")


def releases(repo: AppRepo) -> list[dict[str, object]]:
    res = repo.shipline("releases", "--json", "--limit", "50")
    assert res.code == 0, res.out
    data: list[dict[str, object]] = json.loads(res.out)
    return data


def add_row(repo: AppRepo, text: str) -> None:
    r = httpx.post(repo.url + "/api/items", json={"text": text}, verify=False, timeout=10)
    assert r.status_code in (200, 201), r.text


def test_plan_on_a_fresh_clone_creates_no_file(clones: tuple[AppRepo, AppRepo]) -> None:
    _, ci = clones
    before = untracked(ci)
    res = ci.shipline("plan")
    assert res.code == 0, res.out
    assert untracked(ci) == before == "", "plan wrote a file"
    assert not (ci.path / ".shipline").exists()


def test_two_checkouts_deploy_alternately_and_share_one_history(clones: tuple[AppRepo, AppRepo]) -> None:
    laptop, ci = clones
    for i in range(6):
        who = (laptop, ci)[i % 2]
        git(who.path, "commit", "--allow-empty", "-q", "-m", f"deploy {i + 1}")  # the live commit again: "already live"
        res = who.shipline("deploy")
        assert res.code == 0, res.out
        assert f"release {i + 1}:" in res.out
        add_row(who, f"row {i + 1}")
    assert not (ci.path / ".shipline").exists(), "the CI clone keeps no local state"
    from_laptop, from_ci = releases(laptop), releases(ci)
    assert from_laptop == from_ci
    assert [r["number"] for r in from_laptop] == [6, 5, 4, 3, 2, 1]
    assert [r["status"] for r in from_laptop] == ["succeeded"] * 6
    assert all(r["digests"] and r["files"] for r in from_laptop), "each release records image and file digests"
    items = json.dumps(laptop.get("/api/items").json())
    assert all(f"row {i}" in items for i in range(1, 7))


def test_rollback_from_one_checkout_to_a_release_made_by_the_other(clones: tuple[AppRepo, AppRepo]) -> None:
    laptop, ci = clones
    made_by_laptop = next(r for r in releases(ci) if r["number"] == 5)
    res = ci.shipline("rollback", "5")
    assert res.code == 0, res.out
    latest = releases(laptop)[0]
    assert (latest["number"], latest["rollback_of"], latest["status"]) == (7, 5, "succeeded")
    assert latest["images"] == made_by_laptop["images"]
    add_row(ci, "after rollback")


def test_pruning_keeps_the_newest_releases_whoever_made_them_and_the_data(clones: tuple[AppRepo, AppRepo]) -> None:
    laptop, _ = clones
    app_dir = Path("/home/deploy/.shipline") / laptop.app
    assert sorted(p.name for p in (app_dir / "releases").iterdir()) == ["6", "7"]
    assert (app_dir / "data" / "pgdata" / "PG_VERSION").is_file(), "the relative bind mount lives in the stable data dir"
    items = json.dumps(laptop.get("/api/items").json())
    assert all(f"row {i}" in items for i in range(1, 7)) and "after rollback" in items
    tags = subprocess.run(["docker", "image", "ls", "--format", "{{.Tag}}", f"127.0.0.1:5000/{laptop.app}/backend"],
                          capture_output=True, text=True, check=True).stdout.split()
    kept = {str(r["images"]["backend"]).rsplit(":", 1)[1] for r in releases(laptop)[:2]}  # type: ignore[index]
    assert set(tags) == kept
