"""Helpers for integration tests: the test environment's facts, a git repo of the example, the CLI, HTTP."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fullstack"
ENV_FILE = Path("/var/lib/shipline-testenv/env")


def read_env_file(path: Path) -> dict[str, str]:
    """`export NAME=value` lines, as scripts/testenv writes them."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip().removeprefix("export ")
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            values[k] = v.strip().strip('"').strip("'")
    return values


def read_testenv() -> dict[str, str]:
    """Variables written by `scripts/testenv up`; integration tests cannot run without them."""
    if not ENV_FILE.is_file():
        raise RuntimeError(f"{ENV_FILE} is missing: run `scripts/testenv up` (make test does) first")
    return read_env_file(ENV_FILE)


def built(out: str) -> set[str]:
    """Services whose `docker buildx build` ran: each says `<service>: built <ref> in <seconds>s`."""
    return set(re.findall(r"(\S+): built \S+ in [\d.]+s$", out, re.MULTILINE))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.test",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "t@example.test"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout.strip()


@dataclass
class Result:
    code: int
    out: str


@dataclass
class AppRepo:
    """A fresh git repository holding a copy of the example, deployed under its own app name and port."""

    path: Path
    app: str
    port: int
    env: dict[str, str]
    scheme: str = "https"
    config: str = "shipline.yml"  # relative to the repository root
    sources: str = ""  # where backend/ and frontend/ are, relative to the repository root

    def shipline(self, *args: str, config: str | None = None, timeout: float = 600) -> Result:
        config = config or self.config
        proc = subprocess.run([sys.executable, "-m", "shipline", *args, "--config", config] if args[0] not in ("keyscan", "init") else
                              [sys.executable, "-m", "shipline", *args],
                              cwd=self.path, env=self.env, capture_output=True, text=True, timeout=timeout)
        out = proc.stdout + proc.stderr
        print(out)  # shown by pytest when a test fails
        return Result(proc.returncode, out)

    def head(self) -> str:
        return git(self.path, "rev-parse", "--short=7", "HEAD")

    def commit(self, message: str) -> str:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)
        return git(self.path, "rev-parse", "--short=7", "HEAD")

    def edit(self, relpath: str, old: str, new: str) -> None:
        p = self.path / relpath
        text = p.read_text()
        assert old in text, f"{old!r} not in {relpath}"
        p.write_text(text.replace(old, new))

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, verify=False, timeout=10)

    def version(self) -> str:
        r = self.get("/api/version")
        r.raise_for_status()
        return str(r.json()["version"])

    def wait_version(self, expected: str, timeout: float = 30) -> str:
        """The proxy may need a moment to notice new containers; poll, with a deadline."""
        deadline = time.monotonic() + timeout
        seen = ""
        while time.monotonic() < deadline:
            try:
                seen = self.version()
                if seen == expected:
                    return seen
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.5)
        return seen


def make_app_repo(tmp: Path, app: str, extra_env: dict[str, str] | None = None) -> AppRepo:
    env_vars = read_testenv()
    path = tmp / app
    shutil.copytree(EXAMPLE, path, ignore=shutil.ignore_patterns(".shipline", "__pycache__"))
    port = free_port()
    text = (path / "shipline.yml").read_text()
    text = text.replace("app: fullstack", f"app: {app}", 1)
    (path / "shipline.yml").write_text(text)
    (path / ".shipline").mkdir(exist_ok=True)
    (path / ".shipline" / "secrets").write_text("POSTGRES_PASSWORD=it-secret-Zq7wX9\n")
    (path / ".shipline" / "secrets").chmod(0o600)
    git(path, "init", "-q", "-b", "main")
    env = {**os.environ, **env_vars, "HTTPS_PORT": str(port), "PROXY_API_PORT": str(free_port()), **(extra_env or {})}
    repo = AppRepo(path, app, port, env)
    repo.commit("initial")
    return repo


def make_example_repo(tmp: Path, app: str, example: str, extra_env: dict[str, str] | None = None) -> AppRepo:
    """A repository holding `examples/<example>` beside the fullstack example's backend and frontend (which it
    builds), with `shipline.yml` in the example's directory: as a team keeps deploy files in a subdirectory."""
    env_vars = read_testenv()
    path = tmp / app
    for part in (example, "fullstack/backend", "fullstack/frontend"):
        shutil.copytree(ROOT / "examples" / part, path / "examples" / part,
                        ignore=shutil.ignore_patterns(".shipline", "__pycache__"))
    (path / ".gitignore").write_text(".shipline/\n")
    config = path / "examples" / example / "shipline.yml"
    text = config.read_text()
    config.write_text(text.replace(f"app: {example}", f"app: {app}", 1))
    (config.parent / ".shipline").mkdir()
    (config.parent / ".shipline" / "secrets").write_text("POSTGRES_PASSWORD=it-secret-Zq7wX9\n")
    (config.parent / ".shipline" / "secrets").chmod(0o600)
    git(path, "init", "-q", "-b", "main")
    port = free_port()
    env = {**os.environ, **env_vars, "HTTPS_PORT": str(port), "HTTP_PORT": str(port), **(extra_env or {})}
    repo = AppRepo(path, app, port, env, config=f"examples/{example}/shipline.yml", sources="examples/fullstack/")
    repo.commit("initial")
    return repo


def compose_down(app: str) -> None:
    subprocess.run(["docker", "compose", "--project-name", app, "down", "--volumes", "--remove-orphans"],
                   capture_output=True, check=False)


def registry_tags(registry: str, repo: str) -> list[str]:
    r = httpx.get(f"http://{registry}/v2/{repo}/tags/list", timeout=10)
    if r.status_code == 404:
        return []
    r.raise_for_status()
    return list(r.json().get("tags") or [])


def registry_labels(registry: str, repo: str, tag: str) -> dict[str, str]:
    accept = ", ".join([
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    ])
    r = httpx.get(f"http://{registry}/v2/{repo}/manifests/{tag}", headers={"Accept": accept}, timeout=10)
    r.raise_for_status()
    manifest = r.json()
    if "manifests" in manifest:  # an index: take the image manifest for this platform
        digest = manifest["manifests"][0]["digest"]
        manifest = httpx.get(f"http://{registry}/v2/{repo}/manifests/{digest}", headers={"Accept": accept}, timeout=10).json()
    blob = httpx.get(f"http://{registry}/v2/{repo}/blobs/{manifest['config']['digest']}", timeout=10, follow_redirects=True)
    blob.raise_for_status()
    return dict(json.loads(blob.content)["config"].get("Labels") or {})


CADDY_PROXY = {
    "image": "caddy:2",
    # --resume: after a restart Caddy serves the last routes shipline loaded (autosaved in /config).
    "command": ["caddy", "run", "--resume"],
    # The admin API on the container's loopback only: shipline runs `caddy reload` inside the container.
    "environment": {"CADDY_ADMIN": "localhost:2019", "XDG_CONFIG_HOME": "/config", "XDG_DATA_HOME": "/data"},
    "ports": ["127.0.0.1:${HTTPS_PORT}:80"],
    # shipline's upstream files: Caddy's routes dial `{file./etc/shipline/...}`, read per request.
    "volumes": ["caddy_config:/config", "caddy_data:/data", "${SHIPLINE_PROXY_DIR:-./proxy}:/etc/shipline:ro"],
    "networks": ["web"],
    "healthcheck": {"test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:2019/config/"],
                    "interval": "2s", "timeout": "3s", "retries": 15},
    "restart": "unless-stopped",
}


def use_caddy(repo: AppRepo) -> None:
    """Put Caddy (admin API, plain HTTP) in place of Traefik, in the compose file and in shipline.yml."""
    compose_path = repo.path / "docker-compose.prod.yml"
    compose = yaml.safe_load(compose_path.read_text())
    compose["services"]["proxy"] = CADDY_PROXY
    compose.setdefault("volumes", {}).update({"caddy_config": {}, "caddy_data": {}})
    compose_path.write_text(yaml.safe_dump(compose, sort_keys=False))
    config_path = repo.path / "shipline.yml"
    config = yaml.safe_load(config_path.read_text())
    config["proxy"]["type"] = "caddy"
    config["proxy"]["listen"] = [":80"]
    del config["proxy"]["api"]  # Caddy's admin API is reached inside its container
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    repo.scheme = "http"
    repo.commit("use Caddy as the proxy")
