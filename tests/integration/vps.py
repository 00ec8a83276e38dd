"""The test "VPS" nodes (`scripts/testenv vps up`): three containers, each with its own dockerd and sshd.

Tests deploy to them through shipline over SSH, exactly as to real servers. This module is the tests' own side
door (`docker exec` as root on the machine): to look at a node's engine independently of shipline, and to break
a node on purpose (stop its sshd).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from .stack import ROOT, read_env_file

VPS_ENV = Path("/var/lib/shipline-testenv/vps.env")


@dataclass(frozen=True)
class Node:
    index: int  # 1-based, as in the container's name
    address: str  # deploy@IP:22, what shipline.yml names
    host_key: str  # the node's own ed25519 host key, to pin
    container: str  # the node's container on the machine's engine

    @property
    def ip(self) -> str:
        return self.address.split("@", 1)[1].rsplit(":", 1)[0]

    def sh(self, script: str, *, check: bool = True, timeout: float = 120) -> str:
        """Run a shell script as root inside the node (not through shipline)."""
        proc = subprocess.run(["docker", "exec", self.container, "sh", "-c", script],
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{self.container}: {script!r} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
        return proc.stdout

    def docker(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(["docker", "exec", self.container, "docker", *args], capture_output=True, text=True,
                              timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"{self.container}: docker {' '.join(args)} failed: {proc.stdout}{proc.stderr}")
        return proc.stdout

    def stop_sshd(self) -> None:
        """The server is up, but nobody can log in: what a deploy meets when a host's SSH is down."""
        self.sh("kill $(cat /run/sshd.pid); while [ -e /run/sshd.pid ] && kill -0 $(cat /run/sshd.pid) 2>/dev/null; do sleep 0.1; done")

    def start_sshd(self) -> None:
        self.sh("[ -e /run/sshd.pid ] && kill -0 $(cat /run/sshd.pid) 2>/dev/null || "
                "/usr/sbin/sshd -f /etc/ssh/sshd_config.shipline -E /var/log/sshd.log")


def start_nodes() -> list[Node]:
    """Start the nodes if needed (cheap when they run: about 2 s) and describe them."""
    proc = subprocess.run([str(ROOT / "scripts" / "testenv"), "vps", "up"], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/testenv vps up failed:\n{proc.stdout}{proc.stderr}")
    env = read_env_file(VPS_ENV)
    return [Node(i, env[f"SHIPLINE_TEST_VPS_{i}"], env[f"SHIPLINE_TEST_VPS_{i}_HOST_KEY"],
                 env[f"SHIPLINE_TEST_VPS_{i}_CONTAINER"])
            for i in range(1, int(env["SHIPLINE_TEST_VPS_COUNT"]) + 1)]
