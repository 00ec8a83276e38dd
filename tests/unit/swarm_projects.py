"""A small `deploy.mode: swarm` project on disk, loaded as `shipline plan` loads it (no Docker, no git)."""

from __future__ import annotations

from pathlib import Path

from shipline.project import Project, load_project

from .projects import write_project

COMPOSE = """\
services:
  proxy:
    image: traefik:v3.7
    ports: [{target: 443, published: 443, mode: host}]
    restart: unless-stopped
    networks: [web]
    deploy: {mode: global, endpoint_mode: dnsrr}
  db:
    image: postgres:15
    volumes: [pgdata:/var/lib/postgresql/data]
    networks: [data]
    deploy:
      placement: {constraints: [node.labels.db == true]}
  backend:
    build: ./backend
    environment: {DATABASE_PASSWORD_FILE: /run/secrets/db_password, MODE: "${MODE:-prod}"}
    env_file: [backend.env, {path: local.env, required: false}]
    secrets: [db_password]
    depends_on: {db: {condition: service_healthy}}
    networks: {web: {}, data: {aliases: [api]}}
    mem_limit: 512m
    healthcheck: {test: ["CMD", "true"]}
    deploy: {replicas: 3, labels: ["team=shop"], endpoint_mode: dnsrr}
  frontend:
    build: ./frontend
    networks: [web]
    deploy: {endpoint_mode: dnsrr}
  worker:
    build: ./backend
    command: python -m app.worker
networks: {web: {driver: overlay}, data: {driver: overlay, internal: true}}
volumes: {pgdata: {}}
secrets:
  db_password: {environment: POSTGRES_PASSWORD}
"""

SHIPLINE = """\
app: shop
registry: {url: "127.0.0.1:5000"}
build:
  backend: {context: backend}
  frontend: {context: frontend}
  worker: {context: backend}
hosts:
  - {address: "deploy@10.0.0.1", host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKcW1x4Z1Rk9E3q2n0b7oJm1fQ7b0v9Xx9cQW3+e3q1Z"}
  - {address: "deploy@10.0.0.2", host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKcW1x4Z1Rk9E3q2n0b7oJm1fQ7b0v9Xx9cQW3+e3q1Z"}
proxy:
  type: traefik
  service: proxy
  api: 127.0.0.1:8080
  routes:
    backend: {path: /api, port: 8000}
    frontend: {path: /, port: 8080}
deploy:
  mode: swarm
  migrate: {service: backend, command: python -m app.migrate}
  services:
    backend: {health_timeout: 30, drain: 2, stop_timeout: 20}
secrets: [POSTGRES_PASSWORD]
"""


def swarm_project(root: Path, shipline: str = SHIPLINE, compose: str = COMPOSE) -> Project:
    path = write_project(root, shipline, compose)
    (root / "backend.env").write_text("LOG_LEVEL=info\n")
    return load_project(path, env={})
