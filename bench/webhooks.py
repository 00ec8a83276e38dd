#!/usr/bin/env python3
"""How fast `shipline serve` accepts webhooks, and what a `git push` to it costs next to the same CLI deploy.

1. Acceptance latency: waves of 100 concurrent, correctly signed GitHub push deliveries (the recorded payload with
   a distinct commit id each) to a running server, timed from request to answer (202). Baseline in the same run:
   the same concurrency against the server's no-op `/healthz`, so the ratio shows what verifying, parsing,
   de-duplicating and queueing add over the HTTP stack itself. The deliveries go to an app whose runs fail at
   once (its shipline.yml is invalid), so no deploy competes for the CPU.
2. Push-to-live: examples/fullstack (fresh repository, as tests/integration/stack.py makes it) deployed once from
   the CLI to warm the build cache; then, per round, a backend commit deployed with `shipline deploy` (timed from
   start until the app answers with the new version), and another backend commit pushed with `git push` over the
   test sshd to the server's bare repository (timed from the push until the new version answers).

Needs the test environment (scripts/testenv up). Run with shipline's interpreter:
    .venv/bin/python bench/webhooks.py [--waves N] [--rounds N] [--skip-push]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median, quantiles

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.serve_stack import (  # noqa: E402 - the same helpers as the integration tests
    WEBHOOK_SECRET,
    Served,
    commit_change,
    git_push,
    push_url,
    ssh_push_env,
)
from tests.integration.stack import AppRepo, compose_down, git, make_app_repo  # noqa: E402

PAYLOAD = ROOT / "tests" / "data" / "webhooks" / "github-push-branch.json"


def pct(values: list[float], p: int) -> float:
    return quantiles(values, n=100, method="inclusive")[p - 1]


async def wave(url: str, n: int, make: object) -> list[float]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        async def one(i: int) -> float:
            method, path, body, headers, expect = make(i)  # type: ignore[operator]
            start = time.perf_counter()
            resp = await client.request(method, url + path, content=body, headers=headers)
            took = time.perf_counter() - start
            assert resp.status_code == expect, (resp.status_code, resp.text)
            return took
        return list(await asyncio.gather(*(one(i) for i in range(n))))


def delivery(app: str) -> object:
    raw = PAYLOAD.read_bytes().replace(b'"refs/heads/master"', b'"refs/heads/main"', 1)

    def make(i: int) -> tuple[str, str, bytes, dict[str, str], int]:
        body = raw.replace(b"199eddf46df50de8d02e99bf1c5fdb4101338224", secrets.token_hex(20).encode())
        mac = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        return "POST", f"/webhooks/{app}/github", body, {
            "Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": f"sha256={mac}"}, 202
    return make


def healthz(i: int) -> tuple[str, str, bytes, dict[str, str], int]:
    return "GET", "/healthz", b"", {}, 200


def wait_live(repo: AppRepo, version: str, timeout: float = 300) -> None:
    if repo.wait_version(version, timeout) != version:
        raise RuntimeError(f"{version} did not go live")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waves", type=int, default=5, help="waves of 100 concurrent deliveries (default 5)")
    parser.add_argument("--rounds", type=int, default=1, help="push-to-live rounds (default 1)")
    parser.add_argument("--skip-push", action="store_true", help="only the webhook latency")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="shipline-bench-webhooks-"))
    app = f"bw{uuid.uuid4().hex[:8]}"
    repo = make_app_repo(tmp / "repos", app)
    # The same database password as the repository's own .shipline/secrets: CLI and server deploy one stack.
    db_password = (repo.path / ".shipline" / "secrets").read_text().split("=", 1)[1].strip()
    served = Served(repo, tmp, {"POSTGRES_PASSWORD": db_password})
    # A second app for the latency part: its shipline.yml is invalid, so its runs end at once.
    hooks_repo = tmp / "hooks-repo"
    hooks_repo.mkdir()
    git(hooks_repo, "init", "-q", "-b", "main")
    (hooks_repo / "shipline.yml").write_text("app: [not valid\n")
    git(hooks_repo, "add", "-A")
    git(hooks_repo, "commit", "-q", "-m", "invalid on purpose")
    served.extra_apps = {"hooks": {"repository": str(hooks_repo), "branch": "main",
                                   "webhooks": {"github": "${IT_WEBHOOK_SECRET}"}}}
    served.start()
    try:
        lat: list[float] = []
        base: list[float] = []
        asyncio.run(wave(served.url, 20, healthz))  # warm-up
        for _ in range(args.waves):
            base += asyncio.run(wave(served.url, 100, healthz))
            lat += asyncio.run(wave(served.url, 100, delivery("hooks")))
        print(f"webhook acceptance, {args.waves} waves of 100 concurrent signed deliveries (answer 202):")
        print(f"  p50 {pct(lat, 50) * 1000:7.1f} ms   p99 {pct(lat, 99) * 1000:7.1f} ms   max {max(lat) * 1000:7.1f} ms")
        print("baseline, GET /healthz at the same concurrency:")
        print(f"  p50 {pct(base, 50) * 1000:7.1f} ms   p99 {pct(base, 99) * 1000:7.1f} ms   max {max(base) * 1000:7.1f} ms")
        print(f"  ratio p50 {pct(lat, 50) / pct(base, 50):.2f}x   p99 {pct(lat, 99) / pct(base, 99):.2f}x")
        runs = served.get("/api/apps/hooks/runs?limit=500")
        started = sum(1 for r in runs if r["started_at"])
        print(f"  {len(runs)} runs queued, {started} started (the rest superseded)")
        if args.skip_push:
            return
        cli, pushed = [], []
        first = repo.head()
        res = repo.shipline("deploy")  # warm-up: builds the images and starts the stack
        assert res.code == 0, res.out
        wait_live(repo, first)
        dev = tmp / "dev"
        subprocess.run(["git", "clone", "-q", str(repo.path), str(dev)], check=True)
        dev_repo = AppRepo(dev, repo.app, repo.port, repo.env)
        (dev / ".shipline").mkdir()
        (dev / ".shipline" / "secrets").write_text((repo.path / ".shipline" / "secrets").read_text())
        env = ssh_push_env(tmp)
        for i in range(args.rounds):
            # One linear history in the developer's clone: a CLI deploy from there, then a push from there.
            sha = commit_change(dev_repo, f"cli-{i}")
            start = time.perf_counter()
            res = dev_repo.shipline("deploy")
            assert res.code == 0, res.out
            wait_live(repo, sha)
            cli.append(time.perf_counter() - start)
            sha = commit_change(dev_repo, f"push-{i}")
            start = time.perf_counter()
            push = git_push(dev, push_url(served), env)
            wait_live(repo, sha)
            pushed.append(time.perf_counter() - start)
            out = push.communicate(timeout=600)[0]
            assert push.returncode == 0 and " succeeded" in out, out
        print(f"push-to-live, example app, backend change ({args.rounds} round(s), median):")
        print(f"  shipline deploy (CLI)       {median(cli):6.1f} s")
        print(f"  git push to shipline serve  {median(pushed):6.1f} s   ({median(pushed) / median(cli):.2f}x the CLI)")
    finally:
        served.cleanup()
        compose_down(app)
        os.environ.get("KEEP") or subprocess.run(["rm", "-rf", str(tmp)], check=False)


if __name__ == "__main__":
    main()
