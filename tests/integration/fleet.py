"""The example app pointed at the VPS nodes: several servers instead of the machine's single sshd."""

from __future__ import annotations

import yaml

from .stack import AppRepo
from .vps import Node


def on_nodes(repo: AppRepo, nodes: list[Node], **deploy: object) -> None:
    """shipline.yml lists the nodes (keys pinned) as its hosts; `deploy` settings are merged in; committed."""
    path = repo.path / "shipline.yml"
    config = yaml.safe_load(path.read_text())
    config["hosts"] = [{"address": n.address, "ssh_key": "${SHIPLINE_SSH_KEY}", "host_key": n.host_key} for n in nodes]
    config.setdefault("deploy", {}).update(deploy)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    repo.commit(f"deploy to {len(nodes)} servers")
