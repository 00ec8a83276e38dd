#!/usr/bin/env python3
"""Downtime across several servers, under load through a front load balancer, measured in the same run.

Setups (each on the three test VPS nodes, `scripts/testenv vps up`; the load goes to a Caddy on the machine that
round-robins over the nodes without retries, tests/integration/front.py):

  three-hosts        shipline: examples/fullstack on three hosts (roles: the database on the first; proxy,
                     backend and frontend on all), `deploy.batch: 1`; a backend change.
  swarm-start-first  the usual Swarm setup: Traefik as a global service in host mode routing by its Swarm
                     provider (service labels), the service updated by Swarm's own rolling update
                     (`update_config: {order: start-first}` with a health check), 3 replicas of a small Python
                     HTTP service; an environment change rolls every task.

Prints a Markdown table (also written to bench/out/fleet.md) with requests, failures by kind, the longest
stretch without a successful response and the deploy's duration. Needs the test environment
(scripts/testenv up; the nodes are started here); the swarm setup runs `shipline swarm init` first.

    .venv/bin/python bench/fleet.py [--setups three-hosts,swarm-start-first] [--rate 100]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the load generator, the nodes and the example's helpers live with the tests

from integration.fleet import fleet_repo, host_versions, on_nodes, remove_app  # noqa: E402
from integration.front import FrontProxy  # noqa: E402
from integration.load import LoadGenerator, LoadResult  # noqa: E402
from integration.stack import AppRepo, free_port, make_app_repo  # noqa: E402
from integration.vps import Node, start_nodes  # noqa: E402

OUT = ROOT / "bench" / "out"
LEAD, TAIL = 2.0, 2.0  # seconds of load before the deploy and after it
SWARM_TAIL = 20.0  # past Traefik's Swarm provider poll (15 s), so late failures are counted


def under_load(url: str, rate: float, deploy: Callable[[], int], paths: list[str],
               tail: float = TAIL) -> tuple[LoadResult, float, int]:
    with LoadGenerator(url, rate=rate, workers=32, paths=paths) as gen:
        time.sleep(LEAD)
        start = time.monotonic()
        code = deploy()
        took = time.monotonic() - start
        time.sleep(tail)
    assert gen.result is not None
    return gen.result, took, code


def three_hosts(nodes: list[Node], rate: float, work: Path) -> tuple[LoadResult, float, int]:
    app = f"bf{uuid.uuid4().hex[:8]}"
    repo = fleet_repo(work, app, nodes, batch=1)
    try:
        first = repo.shipline("deploy")
        if first.code != 0:
            raise SystemExit(f"three-hosts: the first deploy failed:\n{first.out}")
        repo.edit("backend/app/web.py", '"""HTTP layer', '# bench change\n"""HTTP layer')
        new = repo.commit("backend change")
        with FrontProxy([f"{n.ip}:{repo.port}" for n in nodes], network="shipline-vps", tls=True, workdir=work) as front:
            result = under_load(front.url, rate, lambda: repo.shipline("deploy").code, ["/api/version", "/"])
        if host_versions(repo, nodes) != [new] * 3:
            raise SystemExit("three-hosts: not every host serves the new release")
        return result
    finally:
        remove_app(app, nodes)


SWARM_STACK = """\
version: "3.8"
services:
  traefik:
    image: traefik:v3.7
    command:
      - --entrypoints.web.address=:80
      - --providers.swarm.endpoint=unix:///var/run/docker.sock
      - --providers.swarm.exposedByDefault=false
      - --providers.swarm.network={stack}_web
      - --ping=true
    ports:
      - {{target: 80, published: {port}, protocol: tcp, mode: host}}
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock:ro
    networks: [web]
    deploy:
      mode: global
      endpoint_mode: dnsrr
  app:
    image: python:3.11-slim
    command: ["python", "-m", "http.server", "8000"]
    init: true
    networks: [web]
    healthcheck:
      test: ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/', timeout=2)"]
      interval: 2s
      timeout: 3s
      retries: 3
      start_period: 10s
    deploy:
      replicas: 3
      endpoint_mode: dnsrr
      update_config: {{order: start-first, parallelism: 1, delay: 0s, failure_action: rollback}}
      labels:
        traefik.enable: "true"
        traefik.http.routers.{stack}.rule: PathPrefix(`/`)
        traefik.http.routers.{stack}.entrypoints: web
        traefik.http.services.{stack}.loadbalancer.server.port: "8000"
networks:
  web: {{driver: overlay, attachable: true}}
"""


def swarm_init(nodes: list[Node], work: Path) -> None:
    repo: AppRepo = make_app_repo(work, f"bi{uuid.uuid4().hex[:8]}")
    on_nodes(repo, nodes)
    res = repo.shipline("swarm", "init")
    if res.code != 0:
        raise SystemExit(f"shipline swarm init failed:\n{res.out}")


def swarm_start_first(nodes: list[Node], rate: float, work: Path) -> tuple[LoadResult, float, int]:
    swarm_init(nodes, work)
    stack, port, manager = f"bs{uuid.uuid4().hex[:6]}", free_port(), nodes[0]
    manager.sh(f"cat > /tmp/{stack}.yml <<'EOF'\n{SWARM_STACK.format(stack=stack, port=port)}EOF\n"
               f"docker stack deploy --compose-file /tmp/{stack}.yml {stack} >/dev/null")
    try:
        deadline = time.monotonic() + 120
        while "3/3" not in manager.docker("service", "ls", "--filter", f"name={stack}_app", "--format", "{{.Replicas}}"):
            if time.monotonic() > deadline:
                raise SystemExit("swarm-start-first: the service did not start")
            time.sleep(1)
        with FrontProxy([f"{n.ip}:{port}" for n in nodes], network="shipline-vps", tls=False, workdir=work) as front:
            time.sleep(16)  # Traefik's Swarm provider has seen every task
            update = ["docker", "exec", manager.container, "docker", "service", "update", "--quiet", "--env-add",
                      f"CHANGE={uuid.uuid4().hex[:6]}", f"{stack}_app"]
            return under_load(front.url, rate, lambda: subprocess.run(update, capture_output=True).returncode, ["/"],
                              tail=SWARM_TAIL)
    finally:
        manager.sh(f"docker stack rm {stack} >/dev/null; rm -f /tmp/{stack}.yml", check=False)


SETUPS = {"three-hosts": (three_hosts, "shipline, three hosts, batch 1 (Traefik on each host)"),
          "swarm-start-first": (swarm_start_first, "Swarm's start-first rolling update behind Traefik's Swarm provider")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--rate", type=float, default=100.0)
    args = parser.parse_args()
    nodes = start_nodes()
    rows = ["| setup (3 servers, through a front load balancer) | requests | failed | longest gap | deploy |",
            "| --- | ---: | ---: | ---: | --- |"]
    with tempfile.TemporaryDirectory(prefix="shipline-bench-fleet-") as tmp:
        for name in args.setups.split(","):
            run, label = SETUPS[name]
            result, took, code = run(nodes, args.rate, Path(tmp))
            kinds = ", ".join(f"{k} {n}" for k, n in result.failures_by_kind().most_common())
            rows.append(f"| {label} | {result.total} | **{result.failed}**{f' ({kinds})' if kinds else ''} | "
                        f"{result.longest_gap() * 1000:.0f} ms | {took:.1f} s, exit {code} |")
            print(f"{name}: {result.summary()}", flush=True)
    table = "\n".join(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "fleet.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
