"""A real `shipline serve` process for integration tests: serve.yml, start/kill/restart, its API, git push over SSH."""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from .stack import AppRepo, free_port, git, read_testenv

TOKEN = "it-operator-token-" + uuid.uuid4().hex
WEBHOOK_SECRET = "it-webhook-secret-" + uuid.uuid4().hex
DEPLOY_HOME = Path("/home/deploy")  # the test sshd's user; pushes over SSH run the hook as that user


@dataclass
class Served:
    """One server deploying one app (`app_repo` as its repository), with a bare repository the SSH user owns."""

    repo: AppRepo
    root: Path
    secrets: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    app: str = "shop"
    extra_apps: dict[str, Any] = field(default_factory=dict)  # more apps in serve.yml, as written

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def git_dir(self) -> Path:
        return DEPLOY_HOME / f"shipline-it-{self.repo.app}"

    @property
    def bare(self) -> Path:
        return self.git_dir / f"{self.app}.git"

    @property
    def log_file(self) -> Path:
        return self.root / "serve.log"

    def write_config(self) -> Path:
        secrets_file = self.root / "shop.secrets"
        secrets_file.write_text("".join(f'{k}="{v}"\n' for k, v in self.secrets.items()))
        secrets_file.chmod(0o600)
        config = {
            "data_dir": str(self.root / "data"), "listen": f"127.0.0.1:{self.port}", "operator_token": "${IT_OPERATOR_TOKEN}",
            "git_dir": str(self.git_dir),
            "apps": {self.app: {"repository": str(self.repo.path), "branch": "main", "config": "shipline.yml",
                                "webhooks": {"github": "${IT_WEBHOOK_SECRET}"}, "secrets_file": str(secrets_file),
                                "env": {"HTTPS_PORT": self.repo.env["HTTPS_PORT"]}, "timeout": 600, "cancel_grace": 60},
                     **self.extra_apps},
        }
        path = self.root / "serve.yml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self) -> None:
        config = self.write_config()
        env = {**self.repo.env, "IT_OPERATOR_TOKEN": TOKEN, "IT_WEBHOOK_SECRET": WEBHOOK_SECRET}
        env.pop("HTTPS_PORT", None)  # from serve.yml's env, as an operator would set it
        self.git_dir.mkdir(exist_ok=True)
        log = self.log_file.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "shipline", "serve", "--config", str(config)],
                                     stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_file.read_text()
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("shipline serve did not answer:\n" + self.log_file.read_text())
        subprocess.run(["chown", "-R", "deploy:deploy", str(self.git_dir)], check=True)

    def kill9(self) -> None:
        assert self.proc
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.git_dir, ignore_errors=True)

    # --- API ------------------------------------------------------------------------------------------------
    def get(self, path: str) -> Any:
        resp = httpx.get(self.url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=90)
        resp.raise_for_status()
        return resp.json()

    def runs(self) -> list[dict[str, Any]]:
        return list(self.get(f"/api/apps/{self.app}/runs?limit=100"))

    def run(self, run_id: int) -> dict[str, Any]:
        return dict(self.get(f"/api/runs/{run_id}"))

    def wait_run(self, run_id: int, timeout: float = 400, until: tuple[str, ...] = ()) -> dict[str, Any]:
        """Until the run has ended (or reached one of `until`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if run["status"] not in ("queued", "running") or run["status"] in until:
                return run
            time.sleep(0.5)
        raise AssertionError(f"run {run_id} did not end in {timeout}s: {self.run(run_id)}")

    def wait_log(self, run_id: int, text: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if any(text in line for line in run["log"]):
                return
            assert run["status"] in ("queued", "running"), run
            time.sleep(0.3)
        raise AssertionError(f"{text!r} not in run {run_id}'s log within {timeout}s")

    def webhook(self, sha: str, delivery: str, template: Path) -> httpx.Response:
        """A recorded GitHub push delivery, its branch and commit set to ours, signed with the webhook secret."""
        raw = template.read_bytes()
        raw = raw.replace(b'"refs/heads/master"', b'"refs/heads/main"', 1)
        raw = raw.replace(b"199eddf46df50de8d02e99bf1c5fdb4101338224", sha.encode())
        mac = hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        return httpx.post(f"{self.url}/webhooks/{self.app}/github", content=raw, timeout=10, headers={
            "Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": f"sha256={mac}"})


def ssh_push_env(tmp: Path) -> dict[str, str]:
    """git over the test sshd as `deploy`, the host key pinned."""
    env = read_testenv()
    known = tmp / "known_hosts"
    known.write_text(f"[127.0.0.1]:2222 {env['SHIPLINE_HOST_KEY']}\n")
    command = (f"ssh -i {env['SHIPLINE_SSH_KEY']} -o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes "
               "-o IdentitiesOnly=yes -o BatchMode=yes")
    return {**os.environ, "GIT_SSH_COMMAND": command}


def push_url(served: Served) -> str:
    return f"ssh://deploy@127.0.0.1:2222{served.bare}"


def git_push(repo: Path, url: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`git push URL HEAD:main`, its output (remote: lines included) readable line by line."""
    return subprocess.Popen(["git", "-C", str(repo), "push", url, "HEAD:refs/heads/main"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)


def commit_change(repo: AppRepo, marker: str) -> str:
    """A commit that changes the backend (so its image is rebuilt): the served version becomes its short SHA."""
    path = repo.path / "backend" / "app" / "web.py"
    text = path.read_text()
    lines = [ln for ln in text.splitlines(keepends=True) if not ln.startswith("# serve-it:")]
    path.write_text(f"# serve-it: {marker}\n" + "".join(lines))
    return repo.commit(f"serve test: {marker}")


def full_sha(repo: AppRepo) -> str:
    return git(repo.path, "rev-parse", "HEAD")
