"""`shipline serve` on the real stack: webhooks and `git push` (over the test sshd) deploy the example for real.

One server and one app go through the issue's must-show list in order, as a team's would; each test builds on the
state the previous one left (the deployed release, the runs so far).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from .serve_stack import Served, commit_change, full_sha, git_push, push_url, ssh_push_env
from .stack import AppRepo, compose_down, make_app_repo

pytestmark = pytest.mark.integration
DATA = Path(__file__).parents[1] / "data" / "webhooks"
DB_PASSWORD = "it-serve-Zq7wX9-pg-password"
CERT = "-----BEGIN TEST KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9\nCnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit\n-----END TEST KEY-----"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    app = f"it{uuid.uuid4().hex[:8]}"
    root = Path(tmp_path_factory.mktemp("serve"))
    repo = make_app_repo(root / "repos", app)
    # A careless commit: a file holding the secrets, printed by a test step whole and folded into 9-column lines,
    # so the deploy's output carries them single-line, multi-line and split across lines.
    (repo.path / "leak.txt").write_text(f"{DB_PASSWORD}\n{CERT}\n")
    config = yaml.safe_load((repo.path / "shipline.yml").read_text())
    config["test"].append({"name": "echo-secrets", "image": "busybox:1.35",
                           "run": ["sh", "-c", "cat /workspace/leak.txt; fold -w 9 /workspace/leak.txt"]})
    (repo.path / "shipline.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    repo.commit("echo secrets in a test step")
    server = Served(repo, root, {"POSTGRES_PASSWORD": DB_PASSWORD, "DEPLOY_CERT": CERT})
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
        compose_down(app)


@pytest.fixture(scope="module")
def state() -> dict[str, str]:
    return {}


def pusher_clone(served: Served, tmp: Path) -> AppRepo:
    """A developer's clone of the app, pushing to the server over SSH."""
    import subprocess

    path = tmp / "dev"
    if not path.exists():
        subprocess.run(["git", "clone", "-q", str(served.repo.path), str(path)], check=True)
    return AppRepo(path, served.repo.app, served.repo.port, served.repo.env)


def test_signed_github_webhook_deploys_the_commit(served: Served, state: dict[str, str]) -> None:
    sha = full_sha(served.repo)
    started = time.monotonic()
    resp = served.webhook(sha, "it-delivery-1", DATA / "github-push-branch.json")
    assert resp.status_code == 202, resp.text
    assert time.monotonic() - started < 5
    run = served.wait_run(resp.json()["run"])
    assert run["status"] == "succeeded", "\n".join(run["log"])
    assert run["sha"] == sha and run["source"] == "webhook:github" and run["actor"] == "Codertocat"
    assert {"connect", "checkout", "build", "test", "publish", "deploy"} <= set(run["stages"])
    assert served.repo.wait_version(sha[:7]) == sha[:7]
    # A replay of the same delivery, and a wrongly signed one, queue nothing.
    assert served.webhook(sha, "it-delivery-1", DATA / "github-push-branch.json").json()["duplicate"] is True
    forged = httpx.post(f"{served.url}/webhooks/{served.app}/github", content=b"{}", timeout=10,
                        headers={"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert forged.status_code == 401
    assert len(served.runs()) == 1
    state["a"] = sha[:7]


def test_git_push_over_ssh_deploys_with_the_log_in_the_push_output(served: Served, state: dict[str, str],
                                                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    dev = pusher_clone(served, Path(tmp_path_factory.getbasetemp()))
    b = commit_change(dev, "B")
    proc = git_push(dev.path, push_url(served), ssh_push_env(Path(tmp_path_factory.getbasetemp())))
    out, _ = proc.communicate(timeout=600)
    print(out)
    assert proc.returncode == 0, out
    assert re.search(r"remote: shipline: run #\d+ queued for " + b, out)
    for stage in ("build", "test", "publish", "deploy"):
        assert re.search(rf"remote: (?:\d\d:\d\d:\d\d)?\s*ok\s+{stage} in ", out), f"stage {stage} not in the push output"
    assert "remote: ==> run #" in out and " succeeded" in out
    assert served.repo.wait_version(b) == b
    newest = served.runs()[0]
    assert newest["source"] == "git-push" and newest["actor"] == "deploy" and newest["status"] == "succeeded"
    state["b"] = b


def test_killing_serve_during_a_run_leaves_nothing_running_and_the_app_serving(
        served: Served, state: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    base = Path(tmp_path_factory.getbasetemp())
    dev = pusher_clone(served, base)
    commit_change(dev, "C")
    push = git_push(dev.path, push_url(served), ssh_push_env(base))
    deadline = time.monotonic() + 120
    while not served.runs() or served.runs()[0]["source"] != "git-push" or served.runs()[0]["status"] != "running":
        assert time.monotonic() < deadline, served.runs()[0]
        time.sleep(0.2)
    run_id = served.runs()[0]["id"]
    served.wait_log(run_id, "==> deploy")  # the hosts are being changed: the worst moment
    time.sleep(2)
    served.kill9()
    push.communicate(timeout=60)  # the pusher's stream ends with the server
    assert served.repo.wait_version(state["b"], timeout=90) == state["b"]  # the deploy unwound: B serves
    served.start()
    run = served.wait_run(run_id, timeout=120)
    assert run["status"] == "interrupted" and "not replayed" in run["reason"], run
    assert not [r for r in served.runs() if r["status"] == "running"]
    assert any("shipline serve restarted" in line for line in run["log"]) or any("interrupted" in line for line in run["log"])
    assert served.repo.version() == state["b"]


def test_five_quick_pushes_deploy_the_newest_in_at_most_two_pipelines(
        served: Served, state: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    """Also shows that after the restart above, the next push deploys (the host was healed)."""
    base = Path(tmp_path_factory.getbasetemp())
    dev = pusher_clone(served, base)
    env = ssh_push_env(base)
    before = {r["id"] for r in served.runs()}
    pushes, shas = [], []
    for i in range(1, 6):
        shas.append(commit_change(dev, f"D{i}"))
        proc = git_push(dev.path, push_url(served), env)
        assert proc.stdout
        for line in proc.stdout:  # the next push as soon as this one's run is queued
            if "shipline: run #" in line:
                break
        pushes.append(proc)
    outputs = [p.communicate(timeout=600)[0] for p in pushes]
    runs = [r for r in served.runs() if r["id"] not in before]
    assert len(runs) == 5, runs
    started = [r for r in runs if r["started_at"]]
    assert len(started) <= 2, started
    newest = runs[0]
    assert newest["short_sha"] == shas[-1] and newest["status"] == "succeeded", "\n".join(served.run(newest["id"])["log"])
    assert all(r["status"] == "superseded" and r["reason"].startswith("superseded by ") for r in runs if not r["started_at"])
    assert served.repo.wait_version(shas[-1]) == shas[-1]
    assert any("superseded by" in out for out in outputs[1:4])  # a superseded push says so to its pusher
    state["d"] = shas[-1]


def test_secrets_never_appear_in_logs_api_or_pages(served: Served, state: dict[str, str]) -> None:
    pieces = [DB_PASSWORD[i:i + 9] for i in range(0, len(DB_PASSWORD), 9)]
    pieces += [line[i:i + 9] for line in CERT.splitlines() for i in range(0, len(line), 9)]
    client = httpx.Client(base_url=served.url, timeout=90)
    assert client.post("/login", data={"token": served_token()}).status_code == 303
    texts = []
    echoed = 0
    for run in served.runs():
        full = served.run(run["id"])
        texts += [client.get(f"/runs/{run['id']}").text, client.get(f"/api/runs/{run['id']}").text,
                  client.get(f"/api/runs/{run['id']}/log").text]
        for line in full["log"]:
            if m := re.match(r"(?:\d\d:\d\d:\d\d )?test echo-secrets \| (.*)$", line):  # served runs are -v
                echoed += 1
                assert m[1].strip() == "******", line
    assert echoed >= 3 * 24  # 5 lines whole and 19 folded, in each of (at least) three deploys
    texts += [client.get(p).text for p in ("/", f"/apps/{served.app}", "/api/apps", f"/api/apps/{served.app}/runs",
                                           f"/api/apps/{served.app}/releases")]
    texts.append(served.log_file.read_text())
    everything = "\n".join(texts)
    assert DB_PASSWORD not in everything
    for piece in pieces:
        if len(piece) >= 8:  # shorter ends ("----") are ordinary text
            assert piece not in everything, piece


def served_token() -> str:
    from .serve_stack import TOKEN

    return TOKEN


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_dashboard_in_chromium_refuses_strangers_streams_a_live_log_and_rolls_back(
        served: Served, state: dict[str, str]) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        try:
            stranger = browser.new_page()
            for path in ("/", f"/apps/{served.app}", "/runs/1"):
                stranger.goto(served.url + path)
                assert stranger.url.startswith(served.url + "/login"), path
                assert stranger.locator("input[name=token]").is_visible()
            for path in (f"/apps/{served.app}/rollback", "/runs/1/cancel", f"/apps/{served.app}/deploy"):
                assert stranger.request.post(served.url + path, form={"release": "1"}).status == 401, path
            for path in ("/api/apps", "/runs/1/events", f"/api/apps/{served.app}/releases"):
                assert stranger.request.get(served.url + path).status == 401, path
            stranger.goto(served.url + "/login")
            stranger.fill("input[name=token]", "not-the-token-at-all")
            stranger.click("button[type=submit]")
            assert "Wrong token" in stranger.locator("#error").inner_text()

            page = browser.new_page()
            page.on("dialog", lambda dialog: dialog.accept())
            page.goto(f"{served.url}/apps/{served.app}")
            page.fill("input[name=token]", served_token())
            page.click("button[type=submit]")
            page.wait_for_url(f"{served.url}/apps/{served.app}")
            target = page.locator(f"#releases tr:has(code:text-is('{state['b']}')) button.rollback").first
            target.click()  # roll back to B, the release before the D commits
            page.wait_for_url(re.compile(r".*/runs/\d+$"))
            page.evaluate("window.__notReloaded = true")
            samples: list[tuple[str, int]] = []
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                status = page.locator("#status").inner_text()
                lines = page.locator("#log").inner_text().count("\n")
                samples.append((status, lines))
                if status not in ("queued", "running"):
                    break
                time.sleep(0.1)
            running = [n for s, n in samples if s == "running"]
            assert running and max(running) > min(running), samples[:5]  # lines arrived while it ran
            assert samples[-1][0] == "succeeded", page.locator("#log").inner_text()
            assert samples[-1][1] >= max(running)
            assert page.evaluate("window.__notReloaded") is True  # live, not by reloading
            assert "release" in page.locator("#log").inner_text()
            assert page.locator("#cancel-form").is_hidden()
            page.screenshot(path=str(served.root / "dashboard-run.png"), full_page=True)
        finally:
            browser.close()
    assert served.repo.wait_version(state["b"]) == state["b"]
