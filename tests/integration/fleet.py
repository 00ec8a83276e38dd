"""The example app on several servers: the VPS nodes instead of the machine's single sshd."""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml

from .stack import AppRepo, free_port, make_app_repo
from .vps import Node

FAULT_DIR = "/var/lib/shipline-fault"  # on each node; a file here breaks new backends there (see break_backend)


def on_nodes(repo: AppRepo, nodes: list[Node], **deploy: object) -> None:
    """shipline.yml lists the nodes (keys pinned) as its hosts; `deploy` settings are merged in; committed."""
    path = repo.path / "shipline.yml"
    config = yaml.safe_load(path.read_text())
    config["hosts"] = [{"address": n.address, "ssh_key": "${SHIPLINE_SSH_KEY}", "host_key": n.host_key} for n in nodes]
    config.setdefault("deploy", {}).update(deploy)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    repo.commit(f"deploy to {len(nodes)} servers")


def fleet_repo(tmp: Path, app: str, nodes: list[Node], **deploy: object) -> AppRepo:
    """The example on three servers, as a team would run it behind a load balancer:

    - every host runs the proxy, backend and frontend (role `web`), publishing HTTPS on its own address;
    - the first host also runs the database (role `db`), published on its address for the other hosts' backends;
    - migrations run once; a file in FAULT_DIR on a node makes new backends there never healthy (fault injection
      for tests, mounted read-only).
    """
    repo = make_app_repo(tmp, app)
    db_port = free_port()
    compose_path = repo.path / "docker-compose.prod.yml"
    compose = yaml.safe_load(compose_path.read_text())
    services = compose["services"]
    services["proxy"]["ports"] = ["${HTTPS_PORT}:443", "127.0.0.1:${PROXY_API_PORT}:8080"]
    services["db"]["ports"] = ["${DATABASE_PORT}:5432"]
    services["db"]["networks"] = ["data", "web"]  # an internal-only network cannot publish a port
    backend = services["backend"]
    backend["environment"].update({"DATABASE_HOST": "${DATABASE_HOST}", "DATABASE_PORT": "${DATABASE_PORT}"})
    backend.setdefault("volumes", []).append(f"{FAULT_DIR}:/fault:ro")
    compose_path.write_text(yaml.safe_dump(compose, sort_keys=False))
    config_path = repo.path / "shipline.yml"
    config = yaml.safe_load(config_path.read_text())
    config["env"].update({"DATABASE_HOST": nodes[0].ip, "DATABASE_PORT": str(db_port)})
    config["roles"] = {"db": ["db"], "web": ["proxy", "backend", "frontend"]}
    config["deploy"]["services"]["backend"]["health_timeout"] = 20  # the never-healthy test waits this long
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    for n in nodes:
        n.sh(f"mkdir -p {FAULT_DIR} && rm -f {FAULT_DIR}/*")
    on_nodes(repo, nodes, **deploy)
    config = yaml.safe_load(config_path.read_text())
    for i, host in enumerate(config["hosts"]):
        host["roles"] = ["db", "web"] if i == 0 else ["web"]
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    repo.commit("roles: the database on the first server")
    return repo


def break_backend(repo: AppRepo) -> None:
    """Commit a backend that listens on the wrong port (never healthy) on nodes with FAULT_DIR/never-healthy."""
    repo.edit("backend/app/__main__.py", "port=settings.port)",
              "port=settings.port + os.path.exists('/fault/never-healthy'))")
    repo.edit("backend/app/__main__.py", "import logging\n", "import logging\nimport os\n")
    repo.commit("backend never healthy where the fault file exists")


def remove_app(app: str, nodes: list[Node]) -> None:
    for n in nodes:
        n.sh(f"docker compose --project-name {app} down --volumes --remove-orphans; rm -rf /home/deploy/.shipline/{app}",
             check=False)


def host_versions(repo: AppRepo, nodes: list[Node]) -> list[str]:
    """What each server itself answers on /api/version (straight to its proxy, not through the balancer)."""
    out = []
    for n in nodes:
        try:
            out.append(str(httpx.get(f"https://{n.ip}:{repo.port}/api/version", verify=False, timeout=10).json()["version"]))
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            out.append(f"error: {exc}")
    return out


def backend_containers(app: str, node: Node) -> list[str]:
    return node.docker("ps", "-q", "--filter", f"label=com.docker.compose.project={app}",
                       "--filter", "label=com.docker.compose.service=backend").split()
