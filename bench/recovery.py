#!/usr/bin/env python3
"""How fast does a host recover from a killed deploy?

1. kill -9 to lock: a deploy holds the host's lock and is killed with SIGKILL; how long until another deploy
   holds that lock? Compared with taking the same lock when nobody holds it (same run, same connection costs).
2. A deploy that has to heal (a killed deploy left a new backend beside the old one and a "running" record)
   next to a clean deploy of the same commit, medians of --rounds.

Needs the test environment (scripts/testenv up). Run with shipline's interpreter:
    .venv/bin/python bench/recovery.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from shipline import lock
from shipline.executors.ssh import SSHExecutor
from shipline.layout import HostLayout

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import GIT_ENV, ROOT, free_port, run, testenv  # bench/pipeline.py helpers

EXAMPLE = ROOT / "examples" / "fullstack"
HOLD = """
import sys, time
from pathlib import Path
from shipline import lock
from shipline.executors.ssh import SSHExecutor
from shipline.layout import HostLayout
ex = SSHExecutor(address="deploy@127.0.0.1:2222", hostname="127.0.0.1", port=2222, user="deploy",
                 key_path=Path(sys.argv[1]), pinned=sys.argv[2])
lock.acquire(ex, HostLayout(".shipline", sys.argv[3]), holder="doomed", commit="x", ttl=600, wait=0)
print("held", flush=True)
time.sleep(600)
"""


def executor(env: dict[str, str]) -> SSHExecutor:
    return SSHExecutor(address="deploy@127.0.0.1:2222", hostname="127.0.0.1", port=2222, user="deploy",
                       key_path=Path(env["SHIPLINE_SSH_KEY"]), pinned=env["SHIPLINE_HOST_KEY"])


def kill_to_lock(env: dict[str, str], app: str) -> tuple[float, float]:
    """(seconds from SIGKILL of a holder to our lock, seconds to take the lock when free)."""
    ex = executor(env)
    layout = HostLayout(".shipline", app)
    try:
        start = time.perf_counter()
        lock.acquire(ex, layout, holder="bench", commit="free", ttl=600, wait=30).release()
        free = time.perf_counter() - start
        holder = subprocess.Popen([sys.executable, "-c", HOLD, env["SHIPLINE_SSH_KEY"], env["SHIPLINE_HOST_KEY"], app],
                                  stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        start = time.perf_counter()
        os.kill(holder.pid, signal.SIGKILL)
        lock.acquire(ex, layout, holder="bench", commit="after-kill", ttl=600, wait=30).release()
        after_kill = time.perf_counter() - start
        holder.wait()
        return after_kill, free
    finally:
        ex.close()


def deploy(repo: Path, env: dict[str, str], kill_at: str | None = None) -> float:
    argv = [sys.executable, "-m", "shipline", "deploy"]
    if kill_at is None:
        start = time.perf_counter()
        run(argv, cwd=repo, env=env)
        return time.perf_counter() - start
    proc = subprocess.Popen(argv, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if kill_at in line:
            proc.kill()
            break
    proc.wait()
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env_vars = testenv()
    app = f"benchrec{secrets.token_hex(3)}"
    tmp = Path(tempfile.mkdtemp(prefix="shipline-bench-"))
    repo = tmp / app
    env = {**os.environ, **env_vars, **GIT_ENV, "HTTPS_PORT": str(free_port()), "PROXY_API_PORT": str(free_port())}
    try:
        locks = [kill_to_lock(env_vars, app) for _ in range(args.rounds)]
        shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".shipline", "__pycache__"))
        cfg = repo / "shipline.yml"
        cfg.write_text(cfg.read_text().replace("app: fullstack", f"app: {app}", 1))
        (repo / ".shipline").mkdir()
        (repo / ".shipline" / "secrets").write_text(f"POSTGRES_PASSWORD={secrets.token_urlsafe(12)}\n")
        for step in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "initial"]):
            run(["git", "-C", str(repo), *step], env=env)
        deploy(repo, env)  # the first release: builds, creates the stack
        clean, healing = [], []
        for _ in range(args.rounds):
            clean.append(deploy(repo, env))
            deploy(repo, env, kill_at="backend healthy after")  # leaves a new backend beside the old, "running"
            healing.append(deploy(repo, env))
        after_kill, free = median(a for a, _ in locks), median(f for _, f in locks)
        print(f"kill -9 to lock held by the next deploy: {after_kill:.2f}s (lock when free: {free:.2f}s; "
              f"ratio {after_kill / free:.2f}x; medians of {args.rounds})")
        print(f"deploy that heals leftovers: {median(healing):.1f}s; clean deploy of the same commit: "
              f"{median(clean):.1f}s; ratio {median(healing) / median(clean):.2f}x (medians of {args.rounds})")
    finally:
        subprocess.run(["docker", "compose", "--project-name", app, "down", "--volumes", "--remove-orphans"],
                       capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
