"""The test VPS nodes are what multi-host and Swarm tests take them for: separate servers, each with its own
engine and its own pinned host key, pulling from the test registry by the same image references as the machine.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from shipline.errors import HostKeyError
from shipline.executors.ssh import SSHExecutor

from .stack import read_testenv
from .vps import Node, start_nodes

pytestmark = pytest.mark.integration


def connect(node: Node, pinned: str) -> SSHExecutor:
    return SSHExecutor(address=node.address, hostname=node.ip, port=22, user="deploy",
                       key_path=Path(read_testenv()["SHIPLINE_SSH_KEY"]), pinned=pinned)


def test_each_node_is_a_server_of_its_own_behind_its_pinned_key(vps_nodes: list[Node]) -> None:
    engines = {}
    for node in vps_nodes:
        ex = connect(node, node.host_key)
        try:
            info = json.loads(ex.run(["docker", "info", "--format", "{{json .}}"]).check().output)
        finally:
            ex.close()
        engines[info["ID"]] = info["Name"]
    assert sorted(engines.values()) == [f"vps{n.index}" for n in vps_nodes]
    assert len({n.host_key for n in vps_nodes}) == len(vps_nodes) == 3


def test_a_node_offering_another_key_is_refused(vps_nodes: list[Node]) -> None:
    first, second = vps_nodes[:2]
    with pytest.raises(HostKeyError, match="does not match the pinned one"):
        connect(first, second.host_key)


def test_nodes_pull_from_the_test_registry_and_hold_the_stand_ins(vps_nodes: list[Node]) -> None:
    for node in vps_nodes:
        ex = connect(node, node.host_key)
        try:
            # The machine's registry, by the reference the machine pushes to (a forwarder on the node's loopback).
            ex.run(["docker", "pull", "-q", "127.0.0.1:5000/library/busybox:1.35"]).check()
            # The stand-ins under their official names, identical to the machine's (the registry is the nodes' mirror).
            for image in ("postgres:15", "traefik:v3.7", "caddy:2", "python:3.11-slim"):
                have = ex.run(["docker", "image", "inspect", "--format", "{{.Id}}", image]).check().output.strip()
                assert have == local_image_id(image), f"{node.container}: {image}"
        finally:
            ex.close()


def local_image_id(image: str) -> str:
    return subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", image], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_node_found_stopped_with_a_stale_engine_pid_file_comes_back(vps_nodes: list[Node]) -> None:
    """What a CI machine met: node containers of an earlier run, stopped, their /run/docker.pid naming a PID that
    exists again once the container restarts (1: its init), so a restarted engine refused to start ("pid file
    found") and every multi-host test failed. `vps up` makes such a node anew, serving behind the same key."""
    node = vps_nodes[-1]
    node.sh("echo 1 > /run/docker.pid")
    subprocess.run(["docker", "kill", node.container], check=True, capture_output=True, timeout=60)
    assert start_nodes() == vps_nodes
    ex = connect(node, node.host_key)
    try:
        name = ex.run(["docker", "info", "--format", "{{.Name}}"]).check().output.strip()
    finally:
        ex.close()
    assert name == f"vps{node.index}"
