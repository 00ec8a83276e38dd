"""The load balancer users put in front of several servers: Caddy on the machine, routing to the servers' proxies.

It runs on the machine's engine, attached to the VPS nodes' network (traffic between bridge networks is
blocked), published on loopback only: load generators aim at it and nothing else. Round robin, and on purpose
no retries and no health checks: a request a server fails is a request the client sees fail, so a rollout that
drops anything on any server shows up in the count.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from .stack import free_port


def caddyfile(upstreams: list[str], *, tls: bool) -> str:
    """Caddy's configuration for `upstreams` (host:port of each server's proxy, HTTPS ones unverified when `tls`)."""
    scheme = "https://" if tls else ""
    transport = "\t\ttransport http {\n\t\t\ttls_insecure_skip_verify\n\t\t}\n" if tls else ""
    return (
        "{\n\tadmin off\n\tauto_https off\n}\n"
        ":80 {\n"
        "\treverse_proxy {\n"
        f"\t\tto {' '.join(scheme + u for u in upstreams)}\n"
        "\t\tlb_policy round_robin\n"
        f"{transport}"
        "\t}\n"
        "}\n"
    )


class FrontProxy:
    """`with FrontProxy(["172.30.250.11:8443", ...], network="shipline-vps", tls=True) as front: front.url`"""

    def __init__(self, upstreams: list[str], *, network: str, tls: bool, workdir: Path) -> None:
        self.upstreams, self.network, self.tls = upstreams, network, tls
        self.name = f"shipline-front-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.config = workdir / f"{self.name}.Caddyfile"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self.config.write_text(caddyfile(self.upstreams, tls=self.tls))
        subprocess.run(["docker", "run", "--detach", "--name", self.name, "--network", self.network, "--init",
                        "--publish", f"127.0.0.1:{self.port}:80",
                        "--volume", f"{self.config}:/etc/caddy/Caddyfile:ro",
                        "caddy:2", "caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"],
                       check=True, capture_output=True, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/", timeout=2)
                return self
            except httpx.HTTPError:
                time.sleep(0.2)
        logs = subprocess.run(["docker", "logs", "--tail", "20", self.name], capture_output=True, text=True)
        self.stop()
        raise RuntimeError(f"the front proxy did not answer on {self.url}: {logs.stdout}{logs.stderr}")

    def stop(self) -> None:
        subprocess.run(["docker", "rm", "--force", self.name], capture_output=True, check=False)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
