"""Images are rebuilt only when their build inputs change; otherwise the registry tags the existing image.

The example app goes through commits that touch the backend, a README, an ignored file; each test checks
what was built (the build log), what the registry holds (tags, digests, labels) and what is served.
"""

from __future__ import annotations

import subprocess

import httpx
import pytest

from shipline.inputs import INPUTS_LABEL

from .stack import AppRepo, built, registry_labels, registry_tags

pytestmark = pytest.mark.integration
REGISTRY = "127.0.0.1:5000"
REVISION = "org.opencontainers.image.revision"


@pytest.fixture(scope="module")
def state() -> dict[str, str]:
    return {}


def digest(repo: str, tag: str) -> str:
    accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
    r = httpx.head(f"http://{REGISTRY}/v2/{repo}/manifests/{tag}", headers={"Accept": accept}, timeout=10)
    r.raise_for_status()
    return r.headers["Docker-Content-Digest"]


def full_sha(app: AppRepo, short: str) -> str:
    return subprocess.run(["git", "-C", str(app.path), "rev-parse", short], capture_output=True, text=True,
                          check=True).stdout.strip()



def test_first_deploy_builds_both_and_tags_their_inputs(app_repo: AppRepo, state: dict[str, str]) -> None:
    res = app_repo.shipline("deploy")
    assert res.code == 0, res.out
    assert built(res.out) == {"backend", "frontend"}
    a = app_repo.head()
    for svc in ("backend", "frontend"):
        repo = f"{app_repo.app}/{svc}"
        inputs = [t for t in registry_tags(REGISTRY, repo) if t.startswith("inputs-")]
        assert len(inputs) == 1, inputs
        assert digest(repo, inputs[0]) == digest(repo, a)  # the inputs tag marks exactly the image just pushed
        assert registry_labels(REGISTRY, repo, a)[INPUTS_LABEL] == inputs[0].removeprefix("inputs-")
        state[f"inputs-{svc}"] = inputs[0]
    state["a"] = a


def test_backend_only_commit_rebuilds_the_backend_and_retags_the_frontend(app_repo: AppRepo, state: dict[str, str]) -> None:
    app_repo.edit("backend/app/web.py", '"""HTTP layer', '# reuse-test: backend change\n"""HTTP layer')
    b = app_repo.commit("backend only")
    plan = app_repo.shipline("plan")
    assert plan.code == 0, plan.out
    assert "frontend: reuse: an image with the same build inputs is in the registry" in plan.out
    assert "backend: build: no image with these build inputs in the registry" in plan.out

    res = app_repo.shipline("deploy")
    assert res.code == 0, res.out
    assert built(res.out) == {"backend"}
    assert "frontend: not rebuilt" in res.out and "no layer uploaded" in res.out
    assert app_repo.wait_version(b) == b

    a, front, back = state["a"], f"{app_repo.app}/frontend", f"{app_repo.app}/backend"
    assert {a, b} <= set(registry_tags(REGISTRY, front)) and b in registry_tags(REGISTRY, back)
    assert digest(front, b) == digest(front, a)  # the same image, one more tag: nothing was uploaded
    labels = registry_labels(REGISTRY, front, b)
    assert labels[REVISION] == full_sha(app_repo, a)  # truthful: the commit it was built from
    assert labels["org.opencontainers.image.version"] == a
    assert labels[INPUTS_LABEL] == state["inputs-frontend"].removeprefix("inputs-")
    backend_labels = registry_labels(REGISTRY, back, b)
    assert backend_labels[REVISION] == full_sha(app_repo, b)
    assert f"inputs-{backend_labels[INPUTS_LABEL]}" in registry_tags(REGISTRY, back)
    state["b"] = b


def test_readme_only_commit_builds_and_tests_nothing(app_repo: AppRepo, state: dict[str, str]) -> None:
    (app_repo.path / "README.md").write_text("# the example, now documented\n")
    c = app_repo.commit("README only")
    res = app_repo.shipline("deploy")
    assert res.code == 0, res.out
    assert built(res.out) == set()
    assert "test backend-unit" not in res.out  # the image passed it when it was built
    for svc in ("backend", "frontend"):
        repo = f"{app_repo.app}/{svc}"
        assert digest(repo, c) == digest(repo, state["b"])
    assert app_repo.version() == state["b"]  # the backend reports the commit it was built from


def test_ignored_file_is_no_rebuild_but_a_file_in_the_context_is(app_repo: AppRepo, state: dict[str, str]) -> None:
    (app_repo.path / "backend" / "scratch.pyc").write_bytes(b"\x00ignored by backend/.dockerignore")
    app_repo.commit("an ignored file")
    res = app_repo.shipline("publish")
    assert res.code == 0, res.out
    assert built(res.out) == set() and "backend: not rebuilt" in res.out

    (app_repo.path / "backend" / "app" / "notes.txt").write_text("in the context: COPY app ./app\n")
    app_repo.commit("a file in the context")
    res = app_repo.shipline("publish")
    assert res.code == 0, res.out
    assert built(res.out) == {"backend"} and "frontend: not rebuilt" in res.out


def test_rebuild_flag_builds_anyway(app_repo: AppRepo) -> None:
    res = app_repo.shipline("publish", "--rebuild", "--only", "frontend")
    assert res.code == 0, res.out
    assert built(res.out) == {"frontend"} and "frontend: build: --rebuild" in res.out
