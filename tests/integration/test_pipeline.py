"""The seed's pipeline end to end on the real stack: git -> build & test -> registry -> sshd -> Docker -> Traefik.

One example app goes through a sequence of commits, as a team's would; each test builds on the previous state.
"""

import json
import subprocess

import httpx
import pytest

from shipline.errors import ExitCode

from .stack import AppRepo, read_testenv, registry_labels, registry_tags

pytestmark = pytest.mark.integration
REGISTRY = "127.0.0.1:5000"


@pytest.fixture(scope="module")
def state() -> dict[str, str]:
    return {}


def backend_repo(app: AppRepo) -> str:
    return f"{app.app}/backend"


def test_deploy_commit_a_serves_it_over_https(app_repo: AppRepo, state: dict[str, str]) -> None:
    a = subprocess.run(["git", "-C", str(app_repo.path), "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True).stdout.strip()
    res = app_repo.shipline("deploy")
    assert res.code == 0, res.out
    for stage in ("connect", "checkout", "build", "test", "publish", "deploy"):
        assert f"ok  {stage} in " in res.out, f"stage {stage} did not report its duration"
    assert app_repo.wait_version(a) == a
    page = app_repo.get("/")
    assert page.status_code == 200 and "<title>shipline example</title>" in page.text
    created = app_repo.get("/api/items")
    assert created.status_code == 200
    post = httpx.post(app_repo.url + "/api/items", json={"text": "written at A"}, verify=False, timeout=10)
    assert post.status_code in (200, 201), post.text
    state["a"] = a
    assert "it-secret-Zq7wX9" not in res.out


def test_images_carry_short_sha_tag_and_oci_labels(app_repo: AppRepo, state: dict[str, str]) -> None:
    a = state["a"]
    full = subprocess.run(["git", "-C", str(app_repo.path), "rev-parse", a], capture_output=True, text=True).stdout.strip()
    for service in ("backend", "frontend"):
        repo = f"{app_repo.app}/{service}"
        assert a in registry_tags(REGISTRY, repo)
        labels = registry_labels(REGISTRY, repo, a)
        assert labels["org.opencontainers.image.revision"] == full
        assert labels["org.opencontainers.image.version"] == a
        assert labels["org.opencontainers.image.title"] == service
        assert labels["org.opencontainers.image.source"]
        assert labels["org.opencontainers.image.created"].startswith("20")


def test_commit_b_changes_backend_data_survives_and_dirty_tree_stays_out(app_repo: AppRepo, state: dict[str, str]) -> None:
    app_repo.edit("backend/app/web.py", '"""HTTP layer', '# shipline-test-marker: commit B\n"""HTTP layer')
    b = app_repo.commit("B: change the backend")
    # Uncommitted and untracked changes must not reach the image.
    app_repo.edit("backend/app/web.py", "# shipline-test-marker: commit B", "# shipline-test-marker: DIRTY")
    (app_repo.path / "backend" / "untracked-dirty.txt").write_text("must not ship\n")
    res = app_repo.shipline("deploy")
    assert res.code == 0, res.out
    assert app_repo.wait_version(b) == b
    items = app_repo.get("/api/items").json()
    assert "written at A" in json.dumps(items)
    image = f"{REGISTRY}/{app_repo.app}/backend:{b}"
    listing = subprocess.run(["docker", "run", "--rm", "--entrypoint", "sh", image, "-c",
                              "grep -r shipline-test-marker /srv/app; ls /srv /srv/app"], capture_output=True, text=True)
    assert "commit B" in listing.stdout and "DIRTY" not in listing.stdout
    assert "untracked-dirty.txt" not in listing.stdout
    subprocess.run(["git", "-C", str(app_repo.path), "checkout", "--", "."], check=True)
    (app_repo.path / "backend" / "untracked-dirty.txt").unlink()
    state["b"] = b


def test_failing_test_step_publishes_and_deploys_nothing(app_repo: AppRepo, state: dict[str, str]) -> None:
    tests_dir = app_repo.path / "backend" / "tests"
    (tests_dir / "test_broken.py").write_text(
        "import unittest\n\n\nclass Broken(unittest.TestCase):\n    def test_broken_on_purpose(self):\n"
        "        self.fail('broken at C')\n")
    c = app_repo.commit("C: a failing test")
    res = app_repo.shipline("deploy")
    assert res.code == ExitCode.STEP_FAILED, res.out
    assert "broken at C" in res.out
    for service in ("backend", "frontend"):
        assert c not in registry_tags(REGISTRY, f"{app_repo.app}/{service}")
    assert app_repo.version() == state["b"]
    (tests_dir / "test_broken.py").unlink()
    app_repo.commit("C2: remove the failing test")


def test_never_healthy_backend_fails_within_timeout_and_b_serves_again(app_repo: AppRepo, state: dict[str, str]) -> None:
    # Unit tests still pass; the server listens on the wrong port, so its health check never succeeds.
    app_repo.edit("backend/app/__main__.py", "port=settings.port)", "port=settings.port + 1)")
    d = app_repo.commit("D: backend never healthy")
    res = app_repo.shipline("deploy")
    assert res.code == ExitCode.DEPLOY_FAILED, res.out
    assert "backend did not become healthy" in res.out
    assert "Release 2 is serving" in res.out  # the one before: A was 1, B 2, C 3 (failed test)
    assert app_repo.wait_version(state["b"]) == state["b"]
    assert app_repo.version() != d
    releases = json.loads(app_repo.shipline("releases", "--json").out)
    assert releases[0]["status"] == "failed" and releases[0]["short_sha"] == d


def test_rollback_returns_to_the_previous_release(app_repo: AppRepo, state: dict[str, str]) -> None:
    res = app_repo.shipline("rollback")
    assert res.code == 0, res.out
    assert app_repo.wait_version(state["a"]) == state["a"]
    releases = json.loads(app_repo.shipline("releases", "--json").out)
    assert releases[0]["status"] == "succeeded" and releases[0]["short_sha"] == state["a"]
    assert releases[0]["rollback_of"] is not None
    status = json.loads(app_repo.shipline("status", "--json").out)
    assert status["hosts"][0]["release"]["short_sha"] == state["a"] and not status["drift"]
    services = {s["service"]: s for s in status["hosts"][0]["services"]}
    assert services["backend"]["state"] == "running" and services["backend"]["health"] == "healthy"


def _with_host_key(app_repo: AppRepo, key: str | None) -> str:
    text = (app_repo.path / "shipline.yml").read_text()
    line = next(ln for ln in text.splitlines() if "host_key:" in ln)
    new = text.replace(line, f"    host_key: {key}" if key else "")
    name = "shipline.badkey.yml"
    (app_repo.path / name).write_text(new)
    return name


def test_unknown_and_wrong_host_keys_are_refused(app_repo: AppRepo, state: dict[str, str]) -> None:
    real = read_testenv()["SHIPLINE_HOST_KEY"]
    before = json.loads(app_repo.shipline("releases", "--json").out)
    unknown = app_repo.shipline("deploy", config=_with_host_key(app_repo, None))
    assert unknown.code == ExitCode.HOST_KEY, unknown.out
    assert "not pinned" in unknown.out and "SHA256:" in unknown.out and real.split()[1] in unknown.out
    wrong = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKcW1x4Z1Rk9E3q2n0b7oJm1fQ7b0v9Xx9cQW3+e3q1Z"
    changed = app_repo.shipline("deploy", config=_with_host_key(app_repo, wrong))
    assert changed.code == ExitCode.HOST_KEY, changed.out
    assert "does not match the pinned one" in changed.out
    after = json.loads(app_repo.shipline("releases", "--json").out)
    assert after == before, "a refused host key means nothing ran on the host, not even a record"
    assert app_repo.version() == state["a"]
