"""shipline.yml and its Compose files together: cross-checks, strategies and why, reading from a commit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shipline.errors import ConfigError
from shipline.project import load_project

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
SHIPLINE = f"""\
app: shop
compose: [compose.yaml, compose.prod.yaml]
registry: {{url: 127.0.0.1:5000}}
build:
  web: {{context: web}}
hosts: [{{address: deploy@203.0.113.10, host_key: '{HOST_KEY}'}}]
secrets: [DB_PASSWORD]
env: {{LOG_LEVEL: info}}
"""
COMPOSE = """\
services:
  proxy:
    image: traefik:v3.1
    ports: ["443:443"]
  web:
    build: ./web
    environment: {DB: "${DB_PASSWORD}", LOG: "${LOG_LEVEL}", TAG: "${TAG}"}
    depends_on:
      migrate: {condition: service_completed_successfully}
  migrate:
    build: ./web
    command: [migrate]
  worker:
    image: shop/worker
    container_name: shop-worker
  db:
    image: postgres:16
  seed:
    image: shop/seed
    profiles: [seed]
"""
PROD = "services:\n  web:\n    ports: ['8000']\n"


def write(root: Path, shipline: str = SHIPLINE, compose: str = COMPOSE, prod: str = PROD,
          extra: dict[str, str] | None = None) -> Path:
    (root / "web").mkdir(parents=True, exist_ok=True)
    (root / "web" / "Dockerfile").write_text("FROM python:3.12-slim\n")
    (root / "compose.yaml").write_text(compose)
    (root / "compose.prod.yaml").write_text(prod)
    (root / ".env").write_text("TAG=1.0\n")
    for name, text in (extra or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "shipline.yml").write_text(shipline)
    return root / "shipline.yml"


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_project(path, {})
    assert all("\n" not in p for p in info.value.problems)
    return info.value.problems


def test_valid_project_decides_each_strategy_and_why(tmp_path: Path) -> None:
    shipline = SHIPLINE.replace("build:\n  web: {context: web}", "build:\n  web: {context: web}\n  migrate: {context: web}")
    project = load_project(write(tmp_path, shipline), {})
    assert {n: r.strategy for n, r in project.rollouts.items()} == {
        "proxy": "recreate", "web": "recreate", "migrate": "job", "worker": "recreate", "db": "recreate"}
    assert "fixed host port(s) 443:443" in project.rollouts["proxy"].why
    assert "container_name: shop-worker" in project.rollouts["worker"].why
    assert "web waits for it to complete" in project.rollouts["migrate"].why
    assert project.inactive == {"seed": "profile seed not enabled (deploy.profiles)"}
    assert project.rollout_order() == ["proxy", "migrate", "web", "worker", "db"]
    assert [f.path for f in project.inputs.files] == [".env", "compose.prod.yaml", "compose.yaml"]


def test_profiles_enable_services(tmp_path: Path) -> None:
    shipline = SHIPLINE.replace("build:\n", "deploy: {profiles: [seed]}\nbuild:\n  migrate: {context: web}\n")
    project = load_project(write(tmp_path, shipline), {})
    assert "seed" in project.rollouts and project.inactive == {}


def test_routed_singleton_is_recreated_and_explicit_side_by_side_is_refused(tmp_path: Path) -> None:
    shipline = SHIPLINE.replace("build:\n", "build:\n  migrate: {context: web}\n") + (
        "proxy:\n  type: traefik\n  service: proxy\n  api: 127.0.0.1:8081\n  routes:\n"
        "    web: {path: /, port: 8000}\n    worker: {path: /w, port: 8000}\n")
    project = load_project(write(tmp_path, shipline), {})
    assert project.rollouts["web"].strategy == "zero-downtime"
    assert project.rollouts["worker"].strategy == "recreate"
    assert project.rollouts["worker"].why.startswith("the proxy routes to it, but `container_name: shop-worker`")
    found = problems(write(tmp_path, shipline + "deploy:\n  services:\n    worker: {strategy: start-first}\n"))
    assert any(p.startswith(f"{tmp_path / 'shipline.yml'}: deploy.services.worker.strategy: start-first runs the new "
                            "container beside the old one, but `container_name: shop-worker` allows one container")
               for p in found), found


def test_every_cross_problem_at_once(tmp_path: Path) -> None:
    compose = COMPOSE.replace("TAG: \"${TAG}\"", "TAG: \"${TAG}\", KEY: \"${API_KEY:?the API key}\", P: $PASSWORD")
    shipline = SHIPLINE.replace("web: {context: web}", "web: {context: ../outside}") + \
        "deploy:\n  profiles: [sed]\n  order: [web, nope]\n"
    found = problems(write(tmp_path, shipline, compose))
    keys = [p.split(": ")[1] for p in found]
    assert keys == ["build.web.context", "build", "deploy.profiles[0]", "deploy.order[1]",
                    "services.web.environment.KEY", "services.web.environment.P"], found
    assert "'../outside' is outside the repository" in found[0]
    assert "'migrate' is built from source" in found[1]
    assert "with the message 'the API key'" in found[4] and "Add API_KEY to `secrets:`" in found[4]


def test_variables_come_from_env_secrets_and_dotenv(tmp_path: Path) -> None:
    path = write(tmp_path, SHIPLINE.replace("build:\n", "build:\n  migrate: {context: web}\n"))
    assert load_project(path, {}).compose.services["web"].environment == {
        "DB": "${DB_PASSWORD}", "LOG": "info", "TAG": "1.0"}  # a secret's value is never in a plan
    (tmp_path / ".env").unlink()
    assert any("uses ${TAG}" in p for p in problems(path))


def test_service_depending_on_a_disabled_profile(tmp_path: Path) -> None:
    compose = COMPOSE.replace("  db:\n    image: postgres:16\n", "  db:\n    image: postgres:16\n    depends_on: [seed]\n")
    found = problems(write(tmp_path, SHIPLINE.replace("build:\n", "build:\n  migrate: {context: web}\n"), compose))
    assert any("services.db.depends_on: db needs 'seed', which is in profile seed that is not enabled" in p for p in found)


def git(root: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True, env=env).stdout.strip()


def test_reads_the_commit_not_the_working_tree(tmp_path: Path) -> None:
    path = write(tmp_path, SHIPLINE.replace("build:\n", "build:\n  migrate: {context: web}\n"))
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "one")
    sha = git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "compose.prod.yaml").write_text("services:\n  web:\n    container_name: changed\n")
    path.write_text(path.read_text().replace("app: shop", "app: other"))
    (tmp_path / "untracked.conf").write_text("x")
    project = load_project(path, {}, commit=sha)
    assert project.config.app == "shop"
    assert project.compose.services["web"].container_name is None
    assert project.source == f"commit {sha[:7]}"
    assert project.notes == (f"note: the working tree differs from commit {sha[:7]} in shipline.yml, compose.prod.yaml; "
                             "this is the plan for the commit. Commit your changes to deploy them.",)
    assert load_project(path, {}).config.app == "other"


def test_a_shipline_yml_never_committed_is_read_from_the_working_tree_and_said(tmp_path: Path) -> None:
    path = write(tmp_path, SHIPLINE.replace("build:\n", "build:\n  migrate: {context: web}\n"))
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "compose.yaml", "compose.prod.yaml", ".env", "web")
    git(tmp_path, "commit", "-q", "-m", "one")
    sha = git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "compose.yaml").write_text("services: {}\n")  # the Compose files still come from the commit
    project = load_project(path, {}, commit=sha)
    assert "web" in project.compose.services
    assert project.notes[-1] == (f"note: shipline.yml is not in commit {sha[:7]}: this plan uses the working tree's "
                                 "copy (the Compose files and what they use come from the commit).")
    assert "differs from commit" in project.notes[0] and "compose.yaml" in project.notes[0]
