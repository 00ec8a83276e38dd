"""The HTTP layer in-process (no workers run): webhooks, the hook API, login, CSRF, masking in responses."""

import hashlib
import hmac
import json
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from shipline.server.app import create_app
from shipline.server.settings import parse_settings

DATA = Path(__file__).parents[2] / "data" / "webhooks"
TOKEN = "operator-token-for-tests-0123"
SECRET = "webhook-secret-0123456789"
APP_SECRET = "db-password-Zq7wX9-unit"


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    (tmp_path / "secrets").write_text(f"POSTGRES_PASSWORD={APP_SECRET}\n")
    hooks = {"github": SECRET, "gitea": SECRET, "gitlab": SECRET}
    settings = parse_settings({
        "data_dir": str(tmp_path / "data"), "operator_token": TOKEN,
        "apps": {"shop": {"branch": "master", "webhooks": hooks, "secrets_file": str(tmp_path / "secrets")},
                 "blog": {"branch": "main"}},
    }, "serve.yml", {})
    return TestClient(create_app(settings), follow_redirects=False)


def signed(forge: str, raw: bytes, delivery: str, secret: str = SECRET) -> dict[str, str]:
    mac = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return {
        "github": {"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": f"sha256={mac}"},
        "gitea": {"X-Gitea-Event": "push", "X-Gitea-Delivery": delivery, "X-Gitea-Signature": mac},
        "gitlab": {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": delivery, "X-Gitlab-Token": secret},
    }[forge] | {"Content-Type": "application/json"}


def runs(client: TestClient) -> list[dict[str, object]]:
    resp = client.get("/api/apps/shop/runs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 200
    return list(resp.json())


@pytest.mark.parametrize(("forge", "name", "sha"), [
    ("github", "github-push-branch.json", "199eddf46df50de8d02e99bf1c5fdb4101338224"),
    ("gitea", "gitea-push-goscm.json", "4522cbcefc20728a5b72b3a86af35e608622c514"),
    ("gitlab", "gitlab-push.json", "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"),
])
def test_signed_recorded_push_starts_exactly_one_run_and_replays_none(client: TestClient, forge: str, name: str,
                                                                      sha: str) -> None:
    raw = (DATA / name).read_bytes()
    resp = client.post(f"/webhooks/shop/{forge}", content=raw, headers=signed(forge, raw, "d-1"))
    assert resp.status_code == 202, resp.text
    assert [(r["sha"], r["source"], r["status"]) for r in runs(client)] == [(sha, f"webhook:{forge}", "queued")]
    replay = client.post(f"/webhooks/shop/{forge}", content=raw, headers=signed(forge, raw, "d-1"))
    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    new_id = client.post(f"/webhooks/shop/{forge}", content=raw, headers=signed(forge, raw, "d-2"))
    assert new_id.status_code == 200 and new_id.json()["duplicate"] is True
    assert len(runs(client)) == 1


@pytest.mark.parametrize(("forge", "name"), [
    ("github", "github-push-tag-created.json"), ("github", "github-push-tag-deleted.json"),
    ("github", "github-push-branch-deleted.json"), ("gitea", "gitea-push.json"), ("gitlab", "gitlab-tag-push.json"),
])
def test_tags_other_branches_and_deletions_are_acknowledged_and_ignored(client: TestClient, forge: str, name: str) -> None:
    raw = (DATA / name).read_bytes()
    resp = client.post(f"/webhooks/shop/{forge}", content=raw, headers=signed(forge, raw, f"d-{name}"))
    assert resp.status_code == 200 and resp.json()["ignored"]
    assert runs(client) == []


def test_wrong_signature_unsigned_oversized_malformed(client: TestClient) -> None:
    raw = (DATA / "github-push-branch.json").read_bytes()
    assert client.post("/webhooks/shop/github", content=raw,
                       headers=signed("github", raw, "x", "another-secret-0123456")).status_code == 401
    unsigned = {k: v for k, v in signed("github", raw, "y").items() if k != "X-Hub-Signature-256"}
    assert client.post("/webhooks/shop/github", content=raw, headers=unsigned).status_code == 401
    tampered = raw.replace(b"199eddf46df50de8d02e99bf1c5fdb4101338224", b"0123456789abcdef0123456789abcdef01234567")
    assert client.post("/webhooks/shop/github", content=tampered, headers=signed("github", raw, "z")).status_code == 401
    big = b"{" + b" " * (5 * 1024 * 1024) + b"}"
    assert client.post("/webhooks/shop/github", content=big, headers=signed("github", big, "b")).status_code == 413
    junk = b"not json"
    assert client.post("/webhooks/shop/github", content=junk, headers=signed("github", junk, "j")).status_code == 400
    assert client.post("/webhooks/blog/github", content=raw, headers=signed("github", raw, "n")).status_code == 404
    assert runs(client) == []


def test_repeated_failures_from_one_address_are_rate_limited(client: TestClient) -> None:
    raw = (DATA / "github-push-branch.json").read_bytes()
    for i in range(20):
        client.post("/webhooks/shop/github", content=raw, headers=signed("github", raw, f"bad{i}", "wrong-secret-000000000"))
    good = client.post("/webhooks/shop/github", content=raw, headers=signed("github", raw, "good"))
    assert good.status_code == 429 and int(good.headers["Retry-After"]) >= 1
    assert client.app.state.server.store.runs("shop") == []  # type: ignore[attr-defined]
    # The address is refused everywhere meanwhile, the operator's API included.
    assert client.get("/api/apps", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 429


def test_ping_and_other_events_queue_nothing(client: TestClient) -> None:
    raw = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
    headers = signed("github", raw, "p") | {"X-GitHub-Event": "ping"}
    assert client.post("/webhooks/shop/github", content=raw, headers=headers).json() == {"ignored": "pong"}
    assert runs(client) == []


PAGES = ["/", "/apps/shop", "/runs/1", "/runs/1/events", "/api/apps", "/api/apps/shop/runs", "/api/runs/1",
         "/api/apps/shop/releases", "/api/runs/1/log"]
ACTIONS = ["/apps/shop/deploy", "/apps/shop/rollback", "/runs/1/cancel", "/api/apps/shop/deploy", "/api/runs/1/cancel",
           "/logout"]


def test_without_login_every_page_and_action_is_refused(client: TestClient) -> None:
    client.post("/api/apps/shop/push", json={"ref": "refs/heads/master", "sha": "a" * 40},
                headers={"Authorization": f"Bearer {TOKEN}"})
    for path in PAGES:
        resp = client.get(path, headers={"Accept": "text/html"})
        assert resp.status_code in (303, 401), path
        assert resp.status_code == 401 or resp.headers["location"].startswith("/login"), path
    for path in ACTIONS:
        assert client.post(path, data={"release": "1"}).status_code == 401, path
    assert client.get("/api/apps", headers={"Authorization": "Bearer wrong-token-000000000"}).status_code == 401
    assert runs(client)[0]["status"] == "queued"  # the cancel was refused


def test_login_session_and_csrf(client: TestClient) -> None:
    client.post("/api/apps/shop/push", json={"ref": "refs/heads/master", "sha": "a" * 40},
                headers={"Authorization": f"Bearer {TOKEN}"})
    assert client.post("/login", data={"token": "wrong"}).status_code == 401
    resp = client.post("/login", data={"token": TOKEN, "next": "//evil.example/"})
    assert resp.status_code == 303 and resp.headers["location"] == "/"
    assert "httponly" in resp.headers["set-cookie"].lower() and "samesite=strict" in resp.headers["set-cookie"].lower()
    page = client.get("/runs/1")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    assert client.post("/runs/1/cancel", data={}).status_code == 403
    assert client.post("/runs/1/cancel", data={"csrf": "forged"}).status_code == 403
    assert runs(client)[0]["status"] == "queued"
    done = client.post("/runs/1/cancel", data={"csrf": csrf.group(1)})
    assert done.status_code == 303 and runs(client)[0]["status"] == "cancelled"
    client.post("/logout", data={"csrf": csrf.group(1)})
    assert client.get("/runs/1", headers={"Accept": "text/html"}).status_code == 303


def test_hook_api_needs_the_apps_hook_token(client: TestClient) -> None:
    server = client.app.state.server  # type: ignore[attr-defined]
    body = {"ref": "refs/heads/master", "sha": "b" * 40, "actor": "ann"}
    assert client.post("/api/apps/shop/push", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    blog = server.hook_tokens["blog"]
    assert client.post("/api/apps/shop/push", json=body, headers={"Authorization": f"Bearer {blog}"}).status_code == 401
    ok = client.post("/api/apps/shop/push", json=body, headers={"Authorization": f"Bearer {server.hook_tokens['shop']}"})
    assert ok.status_code == 202 and runs(client)[0]["source"] == "git-push"
    other = client.post("/api/apps/shop/push", json=body | {"ref": "refs/heads/dev", "sha": "c" * 40},
                        headers={"Authorization": f"Bearer {server.hook_tokens['shop']}"})
    assert other.json()["ignored"] and len(runs(client)) == 1


def test_secrets_never_appear_in_api_or_pages(client: TestClient) -> None:
    server = client.app.state.server  # type: ignore[attr-defined]
    body = {"ref": "refs/heads/master", "sha": "d" * 40, "actor": f"x{APP_SECRET}y"}
    client.post("/api/apps/shop/push", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    server.store.append_log(1, [f"leaked {APP_SECRET}", f"token {TOKEN}", f"hook {server.hook_tokens['shop']}"])
    client.post("/login", data={"token": TOKEN})
    texts = [client.get(p).text for p in ("/", "/apps/shop", "/runs/1", "/api/apps", "/api/apps/shop/runs", "/api/runs/1")]
    everything = "\n".join(texts)
    for value in (APP_SECRET, TOKEN, SECRET, server.hook_tokens["shop"]):
        assert value not in everything
    assert json.loads(texts[-1])["actor"] == "x******y"


def test_sse_log_resumes_after_last_event_id_keeps_alive_and_ends_with_the_status(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from shipline.server import app as app_module
    from shipline.server.store import SUCCEEDED

    monkeypatch.setattr(app_module, "KEEPALIVE", 0.2)
    server = client.app.state.server  # type: ignore[attr-defined]
    client.post("/api/apps/shop/push", json={"ref": "refs/heads/master", "sha": "e" * 40},
                headers={"Authorization": f"Bearer {TOKEN}"})
    server.store.append_log(1, ["one", "two", "three"])
    client.post("/login", data={"token": TOKEN})

    def finish_later() -> None:
        import time

        time.sleep(0.7)
        server.store.append_log(1, ["four"])
        server.store.finish_run(1, SUCCEEDED)

    threading.Thread(target=finish_later).start()
    seen: list[str] = []
    with client.stream("GET", "/runs/1/events", headers={"Last-Event-ID": "1"}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            seen.append(line)
            if seen[-2:-1] == ["event: end"]:  # and its data line
                break
    text = "\n".join(seen)
    assert 'data: "one"' not in text  # already shown before the reconnect
    assert 'id: 2\ndata: "two"' in text and 'id: 3\ndata: "three"' in text
    assert ": keep-alive" in text
    assert text.index('"three"') < text.index(": keep-alive") < text.index('"four"')
    assert json.loads(seen[-1].removeprefix("data: "))["status"] == "succeeded"
