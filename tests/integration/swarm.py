"""The Swarm example (examples/swarm) on the three VPS nodes, made one swarm by `shipline swarm init`."""

from __future__ import annotations

import time
from pathlib import Path

from .stack import AppRepo, make_example_repo
from .vps import Node

DB_LABEL = "db=true"  # the node that holds the database's volume (examples/swarm pins the database with it)


def swarm_repo(tmp: Path, app: str, nodes: list[Node]) -> AppRepo:
    """examples/swarm under its own app name and port, with the nodes as hosts (keys pinned) and one swarm."""
    env = {f"SWARM_NODE_{n.index}": n.address for n in nodes} | {f"SWARM_NODE_{n.index}_HOST_KEY": n.host_key for n in nodes}
    repo = make_example_repo(tmp, app, "swarm", env)
    init = repo.shipline("swarm", "init")
    if init.code != 0:
        raise AssertionError(f"shipline swarm init failed:\n{init.out}")
    nodes[0].docker("node", "update", "--label-add", DB_LABEL, f"vps{nodes[0].index}")
    return repo


def remove_stack(app: str, nodes: list[Node]) -> None:
    """The stack, its volume (once the database's task is gone) and the app's files on every node."""
    manager = nodes[0]
    manager.sh(f"docker stack rm {app} >/dev/null 2>&1; "
               f"for s in $(docker service ls -q --filter label=dev.shipline.app={app}); do docker service rm $s; done",
               check=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        left = manager.sh(f"docker network ls -q --filter label=com.docker.stack.namespace={app}; "
                          f"docker volume ls -q --filter name={app}_", check=False).split()
        if not left:
            break
        manager.sh(f"docker volume rm {app}_pgdata >/dev/null 2>&1", check=False)
        time.sleep(1)
    for n in nodes:
        n.sh(f"rm -rf /home/deploy/.shipline/{app}; docker volume rm {app}_pgdata >/dev/null 2>&1", check=False)


def app_services(app: str, manager: Node) -> dict[str, str]:
    """Swarm service name -> its ID, for the app's services."""
    out = manager.docker("service", "ls", "--filter", f"label=dev.shipline.app={app}", "--format", "{{.Name}} {{.ID}}")
    return dict(line.split() for line in out.splitlines() if line.strip())
