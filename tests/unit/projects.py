"""A small valid project on disk (shipline.yml, compose file, Dockerfiles) for tests that need one."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

COMPOSE = """\
services:
  proxy:
    image: traefik:v3.1
    depends_on: [backend, frontend]
  db:
    image: postgres:15
    volumes: [pgdata:/var/lib/postgresql/data]
  backend:
    build: ./backend
    depends_on:
      db: {condition: service_healthy}
    healthcheck: {test: ["CMD", "true"]}
  frontend:
    build: ./frontend
volumes:
  pgdata: {}
"""

SHIPLINE = """\
app: shop
registry: {url: "127.0.0.1:5000"}
build:
  backend: {context: backend, args: {GIT_SHA: "{short_sha}"}}
  frontend: {context: frontend}
test:
  - {name: unit, service: backend, run: python -m unittest}
  - {name: lint, image: "python:3.11-slim", run: [ruff, check, .]}
hosts:
  - address: deploy@127.0.0.1:2222
    host_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKcW1x4Z1Rk9E3q2n0b7oJm1fQ7b0v9Xx9cQW3+e3q1Z
deploy:
  migrate: {service: backend, command: python -m app.migrate}
  services:
    backend: {health_timeout: 30}
secrets: [POSTGRES_PASSWORD]
"""


def write_project(root: Path, shipline: str = SHIPLINE, compose: str = COMPOSE) -> Path:
    (root / "backend").mkdir(parents=True, exist_ok=True)
    (root / "frontend").mkdir(exist_ok=True)
    (root / "backend" / "Dockerfile").write_text("FROM python:3.11-slim\n")
    (root / "frontend" / "Dockerfile").write_text("FROM busybox:1.35\n")
    (root / "docker-compose.prod.yml").write_text(compose)
    path = root / "shipline.yml"
    path.write_text(shipline)
    return path


PROXY = """\
proxy:
  type: traefik
  service: proxy
  api: 127.0.0.1:8081
  routes:
    backend: {path: /api, port: 8000}
    frontend: {path: /, port: 8080}
"""


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.test",
           "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.test"}
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True, env=env).stdout


def committed_project(root: Path, shipline: str = SHIPLINE) -> Path:
    """write_project in a git repository with one commit on `main` (what `plan` and `deploy` read)."""
    path = write_project(root, shipline)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return path
