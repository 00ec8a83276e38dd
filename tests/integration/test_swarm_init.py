"""`shipline swarm init` turns the three VPS nodes into one swarm over SSH, and running it again changes nothing."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from .fleet import on_nodes
from .stack import make_app_repo
from .vps import Node

pytestmark = pytest.mark.integration


def swarm_info(node: Node) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(node.docker("info", "--format", "{{json .Swarm}}"))
    return info


def test_swarm_init_makes_one_swarm_of_three_managers_and_is_idempotent(vps_nodes: list[Node], tmp_path: Path) -> None:
    repo = make_app_repo(tmp_path, f"sw{uuid.uuid4().hex[:8]}")
    on_nodes(repo, vps_nodes)
    first = repo.shipline("swarm", "init")
    assert first.code == 0, first.out
    infos = [swarm_info(n) for n in vps_nodes]
    assert {i["LocalNodeState"] for i in infos} == {"active"}
    assert all(i["ControlAvailable"] for i in infos), "three managers: the swarm survives losing one"
    assert len({i["Cluster"]["ID"] for i in infos}) == 1
    for n in vps_nodes:
        assert re.search(rf"vps{n.index}\s+Ready\s+Active", first.out), first.out
    again = repo.shipline("swarm", "init")
    assert again.code == 0, again.out
    assert again.out.count("already a manager of this swarm") == 3 and "joined" not in again.out
    for role in ("manager", "worker"):
        token = vps_nodes[0].docker("swarm", "join-token", "--quiet", role).strip()
        assert token not in first.out + again.out
