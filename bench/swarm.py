#!/usr/bin/env python3
"""Failed requests during a backend change on Docker Swarm, under load through a front load balancer, two ways,
measured in the same run on the three test VPS nodes (one swarm of three managers, `scripts/testenv vps up`):

  shipline     `deploy.mode: swarm` (examples/swarm): a Swarm service per release, health barrier, every node's
               Traefik file provider switched to the new tasks and confirmed through its API, drain, old
               services removed. The measured command is `shipline deploy` of a commit that changes the backend.
  start-first  what Swarm users run today: the same images, database and replicas as a plain stack, Traefik as
               a global service routing by its Swarm provider (service labels, default 15 s poll), backend and
               frontend updated by Swarm's own rolling update (`update_config: {order: start-first}` with the
               health check). The measured command is `docker service update --image NEW` of the backend, with
               the new backend image shipline built for the first setup.

Both stacks use `endpoint_mode: dnsrr` and publish Traefik in `mode: host`: this machine's kernel has no IPVS, so
service VIPs and the routing mesh do not work here (docs/swarm.md). The load (tests/integration/load.py: open
loop, every request recorded, GET /api/version and /) goes to a Caddy on the machine that round-robins over the
three nodes without retries, starts 2 s before the command and stops 20 s after it ends (past the Swarm
provider's poll, so late failures are counted). The stacks run one after the other, never together.

Prints a Markdown table (also written to bench/out/swarm.md). Needs the test environment (scripts/testenv up);
take the shared locks, the nodes are shared:

    flock /work/.vps.lock flock /work/.itest.lock .venv/bin/python bench/swarm.py [--rate 100] [--runs 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the load generator, the nodes and the example's helpers live with the tests

from integration.fleet import host_versions  # noqa: E402
from integration.front import FrontProxy  # noqa: E402
from integration.load import LoadGenerator, LoadResult  # noqa: E402
from integration.stack import AppRepo, free_port  # noqa: E402
from integration.swarm import remove_stack, swarm_repo  # noqa: E402
from integration.vps import Node, start_nodes  # noqa: E402

OUT = ROOT / "bench" / "out"
LEAD, TAIL = 2.0, 20.0  # seconds of load before the measured command and after it
PATHS = ["/api/version", "/"]
Measured = tuple[LoadResult, float, int]


def under_load(url: str, rate: float, command: list[str], cwd: Path | None = None,
               env: dict[str, str] | None = None) -> tuple[Measured, str]:
    with LoadGenerator(url, rate=rate, workers=32, paths=PATHS) as gen:
        time.sleep(LEAD)
        start = time.monotonic()
        proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
        took = time.monotonic() - start
        time.sleep(TAIL)
    assert gen.result is not None
    return (gen.result, took, proc.returncode), proc.stdout + proc.stderr


def shipline_swarm(nodes: list[Node], rate: float, work: Path) -> tuple[Measured, dict[str, str], dict[str, str]]:
    """shipline's swarm mode; returns the measurement and the images of the release before and after."""
    app = f"bw{uuid.uuid4().hex[:8]}"
    repo: AppRepo = swarm_repo(work, app, nodes)
    try:
        first = repo.shipline("deploy")
        if first.code != 0:
            raise SystemExit(f"shipline: the first deploy failed:\n{first.out}")
        repo.edit(f"{repo.sources}backend/app/web.py", '"""HTTP layer', '# bench change\n"""HTTP layer')
        new = repo.commit("backend change")
        with FrontProxy([f"{n.ip}:{repo.port}" for n in nodes], network="shipline-vps", tls=True, workdir=work) as front:
            command = [sys.executable, "-m", "shipline", "deploy", "--config", repo.config]
            measured, out = under_load(front.url, rate, command, cwd=repo.path, env=repo.env)
        if measured[2] != 0 or host_versions(repo, nodes) != [new] * 3:
            raise SystemExit(f"shipline: the deploy failed or not every node serves {new}:\n{out}")
        history = json.loads(repo.shipline("releases", "--json").out)
        return measured, history[1]["images"], history[0]["images"]
    finally:
        remove_stack(app, nodes)


STACK = """\
version: "3.8"
x-health: &health {{interval: 2s, timeout: 3s, retries: 15, start_period: 30s}}
x-update: &update {{order: start-first, parallelism: 1, delay: 0s, failure_action: rollback}}
services:
  proxy:
    image: traefik:v3.7
    command:
      - --entrypoints.websecure.address=:443
      - --entrypoints.websecure.http.tls=true
      - --providers.swarm.endpoint=unix:///var/run/docker.sock
      - --providers.swarm.exposedByDefault=false
      - --providers.swarm.network={stack}_web
      - --ping=true
      - --log.level=WARN
    ports:
      - {{target: 443, published: {port}, protocol: tcp, mode: host}}
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock:ro
    networks: [web]
    deploy: {{mode: global, endpoint_mode: dnsrr}}
  db:
    image: postgres:15
    environment: {{POSTGRES_USER: app, POSTGRES_DB: app, POSTGRES_PASSWORD: bench-only}}
    volumes: [pgdata:/var/lib/postgresql/data]
    networks: [data]
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -q -h 127.0.0.1 -U app -d app"]
      <<: *health
    deploy:
      endpoint_mode: dnsrr
      placement: {{constraints: [node.labels.db == true]}}
  backend:
    image: {backend}
    environment: {{DATABASE_HOST: db, DATABASE_NAME: app, DATABASE_USER: app, DATABASE_PASSWORD: bench-only}}
    networks: [web, data]
    healthcheck:
      test: ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=2)"]
      <<: *health
    deploy:
      replicas: 2
      endpoint_mode: dnsrr
      update_config: *update
      labels:
        traefik.enable: "true"
        traefik.http.routers.{stack}-api.rule: PathPrefix(`/api`)
        traefik.http.routers.{stack}-api.entrypoints: websecure
        traefik.http.services.{stack}-api.loadbalancer.server.port: "8000"
  frontend:
    image: {frontend}
    init: true
    networks: [web]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      <<: *health
    deploy:
      replicas: 2
      endpoint_mode: dnsrr
      update_config: *update
      labels:
        traefik.enable: "true"
        traefik.http.routers.{stack}-web.rule: PathPrefix(`/`)
        traefik.http.routers.{stack}-web.entrypoints: websecure
        traefik.http.services.{stack}-web.loadbalancer.server.port: "8080"
networks:
  web: {{driver: overlay}}
  data: {{driver: overlay, internal: true}}
volumes:
  pgdata: {{}}
"""


def wait_answers(url: str, path: str, expected: str, timeout: float) -> None:
    """Until every one of 6 requests in a row (two rounds over the nodes) answers 200 with `expected` in it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if all(expected in (r := httpx.get(url + path, timeout=5)).text and r.status_code == 200 for _ in range(6)):
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"start-first: {url}{path} did not answer {expected!r} within {timeout:g}s")


def start_first(nodes: list[Node], rate: float, work: Path, before: dict[str, str], after: dict[str, str]) -> Measured:
    stack, port, manager = f"bs{uuid.uuid4().hex[:6]}", free_port(), nodes[0]
    text = STACK.format(stack=stack, port=port, backend=before["backend"], frontend=before["frontend"])
    manager.sh(f"cat > /tmp/{stack}.yml <<'EOF'\n{text}EOF\n"
               f"docker stack deploy --with-registry-auth --compose-file /tmp/{stack}.yml {stack} >/dev/null")
    try:
        old, new = (ref.rsplit(":", 1)[1] for ref in (before["backend"], after["backend"]))
        with FrontProxy([f"{n.ip}:{port}" for n in nodes], network="shipline-vps", tls=True, workdir=work) as front:
            wait_answers(front.url, "/api/version", old, 180)
            time.sleep(16)  # past a whole poll of Traefik's Swarm provider: every node routes to every task
            update = ["docker", "exec", manager.container, "docker", "service", "update", "--quiet",
                      "--with-registry-auth", "--image", after["backend"], f"{stack}_backend"]
            measured, out = under_load(front.url, rate, update)
            if measured[2] != 0:
                raise SystemExit(f"start-first: docker service update failed:\n{out}")
            wait_answers(front.url, "/api/version", new, 60)
            return measured
    finally:
        manager.sh(f"docker stack rm {stack} >/dev/null; rm -f /tmp/{stack}.yml", check=False)
        for _ in range(60):  # the volume can go once the database's task is gone
            if not manager.sh(f"docker volume rm {stack}_pgdata >/dev/null 2>&1 || echo left", check=False).strip():
                break
            time.sleep(1)


def row(label: str, m: Measured) -> str:
    result, took, code = m
    kinds = ", ".join(f"{k} {n}" for k, n in result.failures_by_kind().most_common())
    return (f"| {label} | {result.total} | **{result.failed}**{f' ({kinds})' if kinds else ''} | "
            f"{result.longest_gap() * 1000:.0f} ms | {took:.1f} s, exit {code} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--runs", type=int, default=1, help="measure both setups this many times, alternating")
    args = parser.parse_args()
    nodes = start_nodes()
    rows = [f"| backend change on a 3-node Swarm, {args.rate:g} req/s through a front balancer | requests | failed "
            "| longest gap | command |", "| --- | ---: | ---: | ---: | --- |"]
    with tempfile.TemporaryDirectory(prefix="shipline-bench-swarm-") as tmp:
        for run in range(1, args.runs + 1):
            work = Path(tmp) / str(run)
            work.mkdir()
            ours, before, after = shipline_swarm(nodes, args.rate, work)
            print(f"shipline (run {run}): {ours[0].summary()}", flush=True)
            theirs = start_first(nodes, args.rate, work, before, after)
            print(f"start-first (run {run}): {theirs[0].summary()}", flush=True)
            rows += [row("shipline `deploy.mode: swarm` (explicit switch on every node's Traefik)", ours),
                     row("Swarm `start-first` rolling update, Traefik Swarm provider", theirs)]
    table = "\n".join(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "swarm.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
