#!/usr/bin/env python3
"""`make demo`: deploy the built-in example from a fresh git repository and say how to deploy a change.

Runs against the local test environment (scripts/testenv up): registry 127.0.0.1:5000, sshd on 2222 as the VPS.
Idempotent: a second run deploys the demo repository's HEAD again.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "fullstack"
DEMO = ROOT / ".demo" / "fullstack"
APP = "fullstack"


def git(*args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "shipline demo", "GIT_AUTHOR_EMAIL": "demo@shipline.invalid",
           "GIT_COMMITTER_NAME": "shipline demo", "GIT_COMMITTER_EMAIL": "demo@shipline.invalid"}
    subprocess.run(["git", "-C", str(DEMO), *args], check=True, env=env, stdout=subprocess.DEVNULL)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_port(name: str, first: int) -> int:
    """`first` unless taken; a port chosen by an earlier demo run is kept (its proxy holds it)."""
    saved = DEMO.parent / f"{name}-port"
    if saved.is_file():
        return int(saved.read_text())
    port = next(p for p in range(first, first + 100) if port_free(p))
    saved.write_text(str(port))
    return port


def create_repo(port: int, api_port: int) -> None:
    """A copy of the example in its own git repository, its host pinned as a user would pin theirs."""
    shutil.copytree(EXAMPLE, DEMO, ignore=shutil.ignore_patterns(".shipline", "__pycache__"))
    config = DEMO / "shipline.yml"
    config.write_text(config.read_text()
                      .replace("${SHIPLINE_SSH_KEY:-~/.ssh/id_ed25519}", os.environ["SHIPLINE_SSH_KEY"])
                      .replace("${SHIPLINE_HOST_KEY}", os.environ["SHIPLINE_HOST_KEY"])
                      .replace("${HTTPS_PORT:-8443}", str(port))
                      .replace("${PROXY_API_PORT:-8081}", str(api_port)))
    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "demo: the example app")
    (DEMO / ".shipline").mkdir(mode=0o700, exist_ok=True)
    # 0600 from the first byte: nobody else on this machine reads the database password.
    fd = os.open(DEMO / ".shipline" / "secrets", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"POSTGRES_PASSWORD={secrets.token_urlsafe(18)}\n")


def remove() -> None:
    subprocess.run(["docker", "compose", "--project-name", APP, "down", "--volumes", "--remove-orphans"], check=False)
    shutil.rmtree(DEMO.parent, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--remove", action="store_true", help="stop the demo app and delete its repository")
    if parser.parse_args().remove:
        remove()
        return 0
    DEMO.parent.mkdir(exist_ok=True)
    port = choose_port("https", 8443)
    if not DEMO.is_dir():
        create_repo(port, choose_port("proxy-api", 8081))
    shipline = [sys.executable, "-m", "shipline"]
    start = time.monotonic()
    proc = subprocess.run([*shipline, "deploy"], cwd=DEMO, check=False)
    if proc.returncode != 0:
        print(f"\nThe demo deploy failed (exit status {proc.returncode}); the output above says why.", file=sys.stderr)
        return proc.returncode
    url = f"https://127.0.0.1:{port}/"
    rel = os.path.relpath(DEMO, Path.cwd())
    cli = Path(sys.executable).parent / "shipline"
    print(f"""
The example app is live at {url}  (self-signed certificate: curl -k {url}api/version)
Deployed in {time.monotonic() - start:.0f}s from a fresh git repository at {rel}.

Deploy a change:
  cd {rel}
  sed -i 's/<h1>/<h1>Changed: /' frontend/www/index.html
  git commit -qam "change the greeting"
  {cli} deploy      # build, test, publish, deploy
  {cli} releases    # history; `{cli} rollback` undoes the last deploy
Remove the demo: make clean-demo
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
