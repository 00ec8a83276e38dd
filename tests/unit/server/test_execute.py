"""A whole run through the runner with real git and a real `shipline deploy` that fails at its config (no Docker)."""

import asyncio
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from shipline.server.app import Server
from shipline.server.settings import parse_settings
from shipline.server.store import FAILED

SECRET = "notify-secret-value-123"


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout.strip()


def receiver() -> tuple[HTTPServer, list[dict[str, Any]]]:
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, got


def test_a_run_fetches_its_commit_runs_deploy_records_the_failure_and_notifies(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "deploy").mkdir()
    (repo / "deploy" / "shipline.yml").write_text(f"app: [broken {SECRET}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "broken config")
    sha = git(repo, "rev-parse", "HEAD")
    (tmp_path / "secrets").write_text(f"TOKEN={SECRET}\n")
    httpd, got = receiver()
    settings = parse_settings({"data_dir": str(tmp_path / "data"), "operator_token": "x" * 16, "apps": {"shop": {
        "repository": str(repo), "config": "deploy/shipline.yml", "secrets_file": str(tmp_path / "secrets"),
        "notify": f"http://127.0.0.1:{httpd.server_port}/hook"}}}, "serve.yml", {})
    server = Server(settings)
    server.prepare()
    queued = server.queue.deploy("shop", sha, "refs/heads/main", "webhook:github", f"ann-{SECRET}")
    assert queued
    run = server.queue.next("shop")
    assert run
    asyncio.run(server.runner.execute(run))
    done = server.store.run(run.id)
    assert done and done.status == FAILED and "not valid YAML" in done.reason
    log = [line for _, line in server.store.log(run.id)]
    assert log[0].startswith(f"==> fetch {sha[:7]} from {repo}") and f"    checked out {sha[:7]}" in log
    assert log[-1].startswith(f"==> run #{run.id} failed")
    assert git(server.repos.checkout("shop"), "rev-parse", "HEAD") == sha
    assert len(got) == 1 and got[0]["status"] == "failed" and got[0]["sha"] == sha and got[0]["id"] == run.id
    assert got[0]["actor"] == "ann-******" and SECRET not in "\n".join(log)
    httpd.shutdown()
