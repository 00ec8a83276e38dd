#!/usr/bin/env python3
"""How much downtime does a deploy cause? Every request of a 200 req/s load, through the proxy, across a deploy.

Three setups, measured in the same run, each a copy of examples/fullstack under its own app name and ports:

  recreate        the seed's way, as users run it today: Traefik with the docker provider (labels on backend and
                  frontend) and a hand-written deploy.sh: `docker compose up -d --no-deps backend`, `sleep 30`,
                  `docker compose up -d --no-deps frontend`, with new images built by `docker buildx build --load`
                  and set through an override file. No health gate.
  traefik         shipline's zero-downtime rollout with Traefik (file provider switched atomically).
  caddy           the same with Caddy (admin API /load), after tests/integration/stack.py's use_caddy.

Scenarios, each a commit that changes backend and frontend (plus the breakage named):

  normal          nothing else
  slow-start      the backend sleeps 10 s before it listens (shipline's backend health_timeout raised to 60 s)
  never-healthy   the backend listens on the wrong port (8001)
  crash           the backend exits with status 3 at start
  long-request    a 10 s GET /api/slow is sent just before the deploy; its status is reported
  post            the load is POST /api/items {"text": "load"} instead of GETs of /api/version and /

The load (tests/integration/load.py: open loop, every request recorded) starts 2 s before the deploy and stops
2 s after it ends. Images are built before the load starts, for every setup: recreate builds them with buildx,
shipline with `shipline publish --ref SHA`, and the measured command is `shipline deploy --no-build --ref SHA`
(pass --build-in-deploy to measure the whole `shipline deploy`, build and tests included, instead).

Writes bench/out/downtime.md (the table and the failures in detail), downtime-<scenario>.png (one panel per
setup, the deploy's phases marked), downtime-<scenario>-<setup>.json (LoadResult.save) and, for shipline,
downtime-<scenario>-<setup>.log (its output). Needs the test environment (scripts/testenv up); run with
shipline's interpreter, matplotlib installed (pip install '.[bench]'):

    .venv/bin/python bench/downtime.py [--setups recreate,traefik,caddy] [--scenarios normal,post,...]
        [--rate 200] [--post-rate N] [--workers 64] [--out DIR] [--shipline-src DIR] [--build-in-deploy]

The example's POST /api/items opens a PostgreSQL connection per request, so on a small machine it may not
take 200 POST/s even without a deploy: the table's "N before the deploy" shows that; --post-rate measures the
post scenario at a rate the stack can serve. Every run takes 15 to 20 minutes on 2 busy cores.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the load generator and the example's helpers live with the tests
sys.path.insert(0, str(ROOT / "bench"))

from integration.load import LoadGenerator, LoadResult, Record, slow_request  # noqa: E402
from integration.stack import EXAMPLE, AppRepo, free_port, make_app_repo, read_testenv, use_caddy  # noqa: E402
from plot import plot_runs  # noqa: E402

OUT = ROOT / "bench" / "out"  # --out changes it
RATE = 200.0  # requests per second through the proxy
WORKERS = 64  # keep-alive connections: enough that a slow, shared machine still gets the full rate sent
LEAD = 2.0  # seconds of load before the deploy starts
TAIL = 2.0  # and after it ends
LONG_SECONDS = 10.0  # the long in-flight request
RECREATE_SLEEP = 30.0  # the seed's deploy.sh: `sleep 30` between backend and frontend
DEPLOY_TIMEOUT = 900.0
POST_BODY = b'{"text": "load"}'

MAIN = "backend/app/__main__.py"
WEB = "backend/app/web.py"
INDEX = "frontend/www/index.html"
CONFIG = "shipline.yml"
TOUCHED = (MAIN, WEB, INDEX)  # restored to the setup's baseline before each scenario's edits


# -- scenarios ------------------------------------------------------------------------------------------------

Edit = tuple[str, str, str]  # (file, old text, new text)


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    edits: tuple[Edit, ...] = ()
    health_timeout: int | None = None  # shipline's backend health_timeout for this commit
    long_request: bool = False
    post: bool = False

    @property
    def broken(self) -> bool:
        return self.key in ("never-healthy", "crash")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("normal", "normal"),
    Scenario("slow-start", "slow start (backend listens after 10 s)", (
        (MAIN, "import threading\n", "import threading\nimport time\n"),
        (MAIN, "    server = make_server(", "    time.sleep(10)  # bench: listen only after 10 s\n    server = make_server("),
    ), health_timeout=60),
    Scenario("never-healthy", "never healthy (backend listens on the wrong port)", (
        (MAIN, "port=settings.port)", "port=settings.port + 1)"),
    )),
    Scenario("crash", "crash on start (SystemExit(3))", (
        (MAIN, "    logging.basicConfig(", "    raise SystemExit(3)  # bench: crash on start\n    logging.basicConfig("),
    )),
    Scenario("long-request", f"long in-flight request ({LONG_SECONDS:g} s /api/slow)", long_request=True),
    Scenario("post", "POST bodies (POST /api/items)", post=True),
)
SCENARIO_KEYS = tuple(s.key for s in SCENARIOS)
SETUP_KEYS = ("recreate", "traefik", "caddy")


def apply_edits(root: Path, baseline: dict[str, str], scenario: Scenario, label: str) -> None:
    """Files back to the setup's baseline, then this scenario's edits and a change to backend and frontend."""
    for rel, text in baseline.items():
        (root / rel).write_text(text)
    for rel, old, new in scenario.edits:
        p = root / rel
        text = p.read_text()
        if old not in text:
            raise RuntimeError(f"{old!r} is not in {rel}: the example changed, update bench/downtime.py")
        p.write_text(text.replace(old, new, 1))
    web = root / WEB
    web.write_text(f"# bench change: {label}\n{web.read_text()}")
    index = root / INDEX
    index.write_text(index.read_text().replace("<h1>", f"<h1>{label} ", 1))


# -- what one measured deploy produced ------------------------------------------------------------------------


@dataclass
class Outcome:
    """The deploy command as run under load."""

    duration: float
    result: str  # 'ok, serves abc1234', 'failed (exit 5): ...', 'exit 0; backend ...'
    log: str = ""
    switches: list[str] = field(default_factory=list)  # shipline's "proxy switched" lines


@dataclass
class Run:
    setup: str  # display name
    setup_key: str
    scenario: Scenario
    result: LoadResult
    outcome: Outcome
    deploy_start: float = 0.0  # on the load's clock
    long: Record | None = None
    long_note: str = ""
    overflows: dict[str, int] = field(default_factory=dict)  # container -> listen-queue overflows in the run

    @property
    def failed_before(self) -> int:
        """Failures before the deploy started: what the load alone does to this stack (the control)."""
        return sum(1 for r in self.result.failures if r.start < self.deploy_start)


class Marker(Protocol):
    def mark(self, label: str) -> float: ...


class Setup(Protocol):
    key: str
    name: str
    app: str  # the Compose project

    @property
    def url(self) -> str: ...

    def prepare(self, scenarios: Sequence[Scenario]) -> None:
        """Initial deploy and every scenario's images, before any load (not measured)."""
        ...

    def deploy(self, scenario: Scenario, gen: Marker) -> Outcome:
        """The measured deploy of the scenario's release."""
        ...

    def recover(self) -> None:
        """Serve the last good release again if the deploy left it broken (not measured)."""
        ...

    def cleanup(self) -> None: ...


def run(argv: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, check: bool = True,
        timeout: float = 900) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"`{shlex.join(argv)}` failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc


def get_version(url: str) -> str | None:
    try:
        r = httpx.get(url + "/api/version", verify=False, timeout=5)
        return str(r.json()["version"]) if r.status_code == 200 else f"HTTP {r.status_code}"
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return type(exc).__name__


def wait_version(url: str, expected: str, timeout: float = 60) -> str | None:
    deadline = time.monotonic() + timeout
    seen = get_version(url)
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = get_version(url)
    return seen


def save_proxy_log(app: str, key: str) -> None:
    """The proxy's own log of the run (errors, reloads), next to the results."""
    res = run(["docker", "compose", "--project-name", app, "logs", "--no-color", "--timestamps", "proxy"], check=False)
    if res.stdout.strip():
        (OUT / f"downtime-proxy-{key}.log").write_text(res.stdout)


def log(setup: str, text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {setup}: {text}", flush=True)


# -- recreate: the seed's compose file (Traefik docker provider) and deploy.sh ---------------------------------

SEED_PROXY_COMMAND = [
    "--entrypoints.websecure.address=:443",
    "--providers.docker=true",
    "--providers.docker.exposedbydefault=false",
    "--providers.docker.constraints=Label(`com.docker.compose.project`,`${COMPOSE_PROJECT_NAME}`)",
    "--providers.docker.network=${COMPOSE_PROJECT_NAME}_web",
    "--ping=true",
    "--log.level=WARN",
]


def seed_labels(service: str, rule: str, priority: int, port: int) -> list[str]:
    return ["traefik.enable=true",
            f"traefik.http.routers.{service}.rule={rule}",
            f"traefik.http.routers.{service}.entrypoints=websecure",
            f"traefik.http.routers.{service}.tls=true",
            f"traefik.http.routers.{service}.priority={priority}",
            f"traefik.http.services.{service}.loadbalancer.server.port={port}"]


def seed_compose(current: str) -> str:
    """The example's compose file as it was before shipline switched the proxy explicitly."""
    doc: dict[str, Any] = yaml.safe_load(current)
    proxy = doc["services"]["proxy"]
    proxy["command"] = SEED_PROXY_COMMAND
    proxy["ports"] = ["127.0.0.1:${HTTPS_PORT:-8443}:443"]
    proxy["volumes"] = ["/var/run/docker.sock:/var/run/docker.sock:ro"]
    doc["services"]["backend"]["labels"] = seed_labels("backend", "PathPrefix(`/api`)", 100, 8000)
    doc["services"]["frontend"]["labels"] = seed_labels("frontend", "PathPrefix(`/`)", 1, 8080)
    return yaml.safe_dump(doc, sort_keys=False)


class Recreate:
    key = "recreate"
    name = "recreate (Traefik docker provider, deploy.sh)"

    def __init__(self, tmp: Path, app: str) -> None:
        self.app, self.dir = app, tmp / app
        self.port = free_port()
        self.tags: dict[str, str] = {}  # scenario key -> image tag (also the GIT_SHA the app reports)
        self.good = "v0"
        self.baseline: dict[str, str] = {}
        self.images: set[str] = set()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def compose(self, *args: str) -> list[str]:
        return ["docker", "compose", "--project-name", self.app, "--file", "docker-compose.prod.yml",
                "--file", "override.yml", "--env-file", "bench.env", *args]

    def image(self, service: str, tag: str) -> str:
        return f"shipline-bench/{self.app}-{service}:{tag}"

    def use(self, tag: str) -> None:
        images = {"services": {s: {"image": self.image(s, tag)} for s in ("backend", "frontend")}}
        (self.dir / "override.yml").write_text(yaml.safe_dump(images))

    def build(self, tag: str) -> None:
        def one(service: str) -> None:
            ref = self.image(service, tag)
            run(["docker", "buildx", "build", "--progress=plain", "--load", "--tag", ref,
                 "--build-arg", f"GIT_SHA={tag}", str(self.dir / service)])
            self.images.add(ref)
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(one, ("backend", "frontend")))

    def prepare(self, scenarios: Sequence[Scenario]) -> None:
        shutil.copytree(EXAMPLE, self.dir, ignore=shutil.ignore_patterns(".shipline", "__pycache__"))
        compose = self.dir / "docker-compose.prod.yml"
        compose.write_text(seed_compose(compose.read_text()))
        (self.dir / "bench.env").write_text(f"POSTGRES_PASSWORD={secrets.token_urlsafe(12)}\nHTTPS_PORT={self.port}\n")
        self.baseline = {rel: (self.dir / rel).read_text() for rel in TOUCHED}
        self.build(self.good)
        self.use(self.good)
        # the seed's order: db healthy, migrate, then the app and the proxy
        run(self.compose("up", "--detach", "--wait", "db"), cwd=self.dir)
        run(self.compose("run", "--rm", "--no-deps", "-T", "backend", "python", "-m", "app.migrate"), cwd=self.dir)
        run(self.compose("up", "--detach", "--wait", "--wait-timeout", "120"), cwd=self.dir)
        if (seen := wait_version(self.url, self.good)) != self.good:
            raise RuntimeError(f"{self.name}: serves {seen}, expected {self.good}")
        log(self.key, f"up at {self.url}, serving {self.good}")
        for i, sc in enumerate(scenarios, 1):
            tag = f"rc{i}-{sc.key}"
            apply_edits(self.dir, self.baseline, sc, tag)
            self.build(tag)
            self.tags[sc.key] = tag
            log(self.key, f"built {tag}")

    def backend_state(self) -> str:
        ids = run(self.compose("ps", "--all", "--quiet", "backend"), cwd=self.dir).stdout.split()
        states = []
        for cid in ids:
            fmt = "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}} restarts={{.RestartCount}}"
            states.append(run(["docker", "inspect", "--format", fmt, cid], check=False).stdout.strip())
        return "; ".join(states) or "no container"

    def deploy(self, scenario: Scenario, gen: Marker) -> Outcome:
        tag = self.tags[scenario.key]
        self.use(tag)
        start = time.monotonic()
        gen.mark("deploy.sh: up backend")
        one = run(self.compose("up", "-d", "--no-deps", "backend"), cwd=self.dir, check=False)
        gen.mark("backend recreated")
        time.sleep(RECREATE_SLEEP)
        gen.mark("up frontend")
        two = run(self.compose("up", "-d", "--no-deps", "frontend"), cwd=self.dir, check=False)
        gen.mark("deploy end")
        duration = time.monotonic() - start
        served = get_version(self.url)
        result = (f"exit {one.returncode}/{two.returncode}; backend {self.backend_state()}; "
                  f"/api/version → {'new release' if served == tag else served}")
        if served == tag:
            self.good = tag
        return Outcome(duration, result, log=one.stdout + one.stderr + two.stdout + two.stderr)

    def recover(self) -> None:
        if get_version(self.url) == self.good:
            return
        log(self.key, f"restoring {self.good} (deploy.sh has no undo)")
        self.use(self.good)
        run(self.compose("up", "--detach", "--no-deps", "--wait", "--wait-timeout", "120", "backend", "frontend"),
            cwd=self.dir)
        if (seen := wait_version(self.url, self.good)) != self.good:
            raise RuntimeError(f"{self.name}: could not restore {self.good}, serves {seen}")

    def cleanup(self) -> None:
        save_proxy_log(self.app, self.key)
        run(["docker", "compose", "--project-name", self.app, "down", "--volumes", "--remove-orphans"], check=False)
        if self.images:
            run(["docker", "image", "rm", *sorted(self.images)], check=False)


# -- zero-downtime: shipline with Traefik or Caddy ----------------------------------------------------------

SWITCHED = re.compile(r"([\w.-]+): proxy switched to (\S+) and confirmed in ([\d.]+)s")
SWITCHED_BACK = re.compile(r"([\w.-]+): proxy switched back")


class Shipline:
    def __init__(self, tmp: Path, app: str, proxy: str, build_in_deploy: bool, source: Path) -> None:
        self.tmp, self.app, self.proxy, self.source = tmp, app, proxy, source
        self.key = proxy
        self.name = f"zero-downtime · {proxy.capitalize()}"
        self.build_in_deploy = build_in_deploy
        self.repo: AppRepo | None = None
        self.shas: dict[str, str] = {}
        self.good = ""
        self.baseline: dict[str, str] = {}

    @property
    def app_repo(self) -> AppRepo:
        assert self.repo is not None, "prepare() first"
        return self.repo

    @property
    def url(self) -> str:
        return self.app_repo.url

    def shipline(self, *args: str) -> subprocess.CompletedProcess[str]:
        repo = self.app_repo
        return run([sys.executable, "-m", "shipline", *args, "--config", CONFIG], cwd=repo.path, env=repo.env)

    def prepare(self, scenarios: Sequence[Scenario]) -> None:
        # unbuffered, so "proxy switched" lines reach the bench when they are printed
        # PYTHONPATH: every shipline run of the bench uses the same snapshot of src/, even if it changes meanwhile
        self.repo = repo = make_app_repo(self.tmp, self.app,
                                         extra_env={"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(self.source)})
        if self.proxy == "caddy":
            use_caddy(repo)
        self.baseline = {rel: (repo.path / rel).read_text() for rel in (*TOUCHED, CONFIG)}
        self.shipline("deploy")
        self.good = repo.head()
        if (seen := wait_version(self.url, self.good)) != self.good:
            raise RuntimeError(f"{self.name}: serves {seen}, expected {self.good}")
        log(self.key, f"up at {self.url}, serving {self.good}")
        for sc in scenarios:
            apply_edits(repo.path, self.baseline, sc, f"{self.key} {sc.key}")
            if sc.health_timeout:
                config = yaml.safe_load((repo.path / CONFIG).read_text())
                config["deploy"]["services"]["backend"]["health_timeout"] = sc.health_timeout
                (repo.path / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
            sha = repo.commit(f"bench: {sc.title}")
            self.shas[sc.key] = sha
            if not self.build_in_deploy:
                self.shipline("publish", "--ref", sha)
            log(self.key, f"{sc.key}: commit {sha}{'' if self.build_in_deploy else ' published'}")

    def deploy(self, scenario: Scenario, gen: Marker) -> Outcome:
        repo = self.app_repo
        sha = self.shas[scenario.key]
        argv = [sys.executable, "-m", "shipline", "deploy", "--ref", sha, "--config", CONFIG]
        if not self.build_in_deploy:
            argv.insert(4, "--no-build")
        start = time.monotonic()
        gen.mark("shipline deploy")
        proc = subprocess.Popen(argv, cwd=repo.path, env=repo.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        killer = threading.Timer(DEPLOY_TIMEOUT, proc.kill)
        killer.start()
        lines: list[str] = []
        switches: list[str] = []
        assert proc.stdout is not None
        try:
            for line in proc.stdout:  # as it streams: the marks land when shipline reports each phase
                lines.append(line)
                if m := SWITCHED.search(line):
                    gen.mark(f"{m[1]} switched")
                    switches.append(f"{m[1]} → {m[2]} (confirmed in {m[3]}s)")
                elif m := SWITCHED_BACK.search(line):
                    gen.mark(f"{m[1]} switched back")
                    switches.append(f"{m[1]} switched back")
                elif "; undoing " in line:
                    gen.mark("gate failed: undo")
                elif re.search(r": old .* stopped", line):
                    gen.mark("old stopped")
            code = proc.wait()
        finally:
            killer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        duration = time.monotonic() - start
        gen.mark(f"deploy end (exit {code})")
        out = "".join(lines)
        if code == 0:
            served = wait_version(self.url, sha, timeout=15)
            result = f"ok, serves {sha}" if served == sha else f"exit 0 but /api/version → {served}"
            if served == sha:
                self.good = sha
        else:
            errors = [ln.removeprefix("error:").strip() for ln in out.splitlines() if ln.startswith("error:")]
            last = errors[-1] if errors else (out.strip().splitlines() or ["no output"])[-1]
            reason = re.sub(r"^\S+@\S+: ", "", last).rstrip(".")
            served = get_version(self.url)
            kept = "old release kept serving" if served == self.good else f"/api/version → {served}"
            result = f"failed (exit {code}): {reason}; {kept}"
        return Outcome(duration, result, log=out, switches=switches)

    def recover(self) -> None:
        seen = get_version(self.url)
        if seen != self.good:
            raise RuntimeError(f"{self.name}: serves {seen} after the deploy, expected {self.good}")

    def cleanup(self) -> None:
        save_proxy_log(self.app, self.key)
        run(["docker", "compose", "--project-name", self.app, "down", "--volumes", "--remove-orphans"], check=False)
        env = read_testenv()
        registry = env.get("SHIPLINE_TEST_REGISTRY", "127.0.0.1:5000")
        refs = run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                    f"reference={registry}/{self.app}/*"], check=False).stdout.split()
        if refs:
            run(["docker", "image", "rm", *refs], check=False)
        # the release files shipline keeps on the "server" (the deploy user's home, reached over ssh)
        known = self.tmp / f"known_hosts-{self.app}"
        known.write_text(f"[127.0.0.1]:2222 {env['SHIPLINE_HOST_KEY']}\n")
        run(["ssh", "-p", "2222", "-i", env["SHIPLINE_SSH_KEY"], "-o", "StrictHostKeyChecking=yes",
             "-o", f"UserKnownHostsFile={known}", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "deploy@127.0.0.1",
             f"rm -rf .shipline/{shlex.quote(self.app)}"], check=False)


# -- measuring ------------------------------------------------------------------------------------------------


def measure(setup: Setup, scenario: Scenario, rate: float, workers: int) -> Run:
    url = setup.url
    if scenario.post:
        gen = LoadGenerator(url, rate=rate, workers=workers, method="POST", body=POST_BODY, paths=["/api/items"],
                            headers={"Content-Type": "application/json"}, max_duration=DEPLOY_TIMEOUT)
    else:
        gen = LoadGenerator(url, rate=rate, workers=workers, paths=["/api/version", "/"], max_duration=DEPLOY_TIMEOUT)
    slow = None
    with ListenOverflows(setup.app) as overflows, gen:
        time.sleep(LEAD)
        if scenario.long_request:
            slow = slow_request(url + "/api/slow?seconds={seconds}", LONG_SECONDS, generator=gen)
            gen.mark(f"{LONG_SECONDS:g} s request sent")
        deploy_start = gen.now()
        outcome = setup.deploy(scenario, gen)
        time.sleep(TAIL)
    assert gen.result is not None
    done = Run(setup.name, setup.key, scenario, gen.result, outcome, deploy_start, overflows=overflows.during())
    if slow is not None:
        try:
            done.long = slow.wait(LONG_SECONDS + 45)
        except TimeoutError:
            done.long_note = "still running 55 s later"
    return done


class ListenOverflows:
    """Each app container's TCP listen-queue overflows during a run (TcpExt ListenOverflows of its network
    namespace, read in /proc every second): a full accept queue drops SYNs, which a proxy sees as a slow or
    failed dial. Containers that appear during the run start from 0."""

    def __init__(self, project: str, interval: float = 1.0) -> None:
        self.project, self.interval = project, interval
        self.first: dict[str, int] = {}
        self.last: dict[str, int] = {}
        self.names: dict[str, str] = {}
        self.pids: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="overflows", daemon=True)
        self._sampled = False

    def __enter__(self) -> ListenOverflows:
        self._sample()
        self._sampled = True
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):
                self._sample()

    @staticmethod
    def read(pid: int) -> int | None:
        try:
            lines = Path(f"/proc/{pid}/net/netstat").read_text().splitlines()
        except OSError:
            return None
        for names, values in itertools.pairwise(lines):
            if names.startswith("TcpExt:") and values.startswith("TcpExt:"):
                table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
                return int(table.get("ListenOverflows", 0))
        return None

    def _sample(self) -> None:
        out = run(["docker", "ps", "--filter", f"label=com.docker.compose.project={self.project}",
                   "--format", "{{.ID}} {{.Names}}"], check=False).stdout
        for line in out.splitlines():
            cid, name = line.split()[:2]
            if cid not in self.pids:
                pid = run(["docker", "inspect", "--format", "{{.State.Pid}}", cid], check=False).stdout.strip()
                if not pid.isdigit() or pid == "0":
                    continue
                self.pids[cid] = int(pid)
            value = self.read(self.pids[cid])
            if value is None:
                continue
            self.names[cid] = name
            self.first.setdefault(cid, value if not self._sampled else 0)
            self.last[cid] = value

    def during(self) -> dict[str, int]:
        deltas = {self.names[c]: self.last[c] - self.first[c] for c in self.last}
        return {n: d for n, d in sorted(deltas.items()) if d > 0}


def long_status(run_: Run) -> str:
    if not run_.scenario.long_request:
        return ""
    if run_.long is None:
        return run_.long_note or "—"
    r = run_.long
    what = f"HTTP {r.status}" if r.error is None else r.error
    return f"{what} after {r.latency:.1f}s"


def path_gaps(result: LoadResult) -> dict[str, float]:
    """Longest gap per path: a path down the whole time hides behind another one's successes otherwise."""
    paths = sorted({r.path for r in result.records})
    return {p: LoadResult(records=[r for r in result.records if r.path == p], ok_statuses=result.ok_statuses).longest_gap()
            for p in paths}


def failing_at_end(result: LoadResult) -> list[str]:
    """Paths whose last request failed: the outage went on past the load window, so it is undercounted."""
    last: dict[str, Record] = {}
    for r in result.records:
        if r.path not in last or r.start > last[r.path].start:
            last[r.path] = r
    return sorted(p for p, r in last.items() if not r.is_ok(result.ok_statuses))


def kinds(result: LoadResult) -> str:
    return ", ".join(f"{k}: {n}" for k, n in result.failures_by_kind().most_common()) or "—"


HEADER = ("setup", "scenario", "requests", "failed", "failures by kind", "longest gap (ms)",
          "worst path gap (ms)", "deploy (s)", "deploy result", "long request")


def row(r: Run) -> tuple[str, ...]:
    res = r.result
    gaps = path_gaps(res)
    worst = max(gaps, key=lambda p: gaps[p]) if gaps else ""
    ongoing = failing_at_end(res)
    still = f" (still failing at the end: {', '.join(ongoing)})" if ongoing else ""
    failed = f"{res.failed} ({r.failed_before} before the deploy)" if r.failed_before else str(res.failed)
    return (r.setup, r.scenario.key, f"{res.total} ({res.rate_achieved:.0f}/s)", failed, kinds(res),
            f"{res.longest_gap() * 1000:.0f}", f"{gaps.get(worst, 0.0) * 1000:.0f} {worst}{still}", f"{r.outcome.duration:.1f}", r.outcome.result, long_status(r))


def text_table(rows: Sequence[tuple[str, ...]]) -> str:
    shown = [tuple(c if len(c) <= 70 else c[:67] + "..." for c in r) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in shown)) for i, h in enumerate(HEADER)]
    line = " | ".join(h.ljust(w) for h, w in zip(HEADER, widths, strict=True))
    out = [line, "-+-".join("-" * w for w in widths)]
    out += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in shown]
    return "\n".join(out)


def md_table(rows: Sequence[tuple[str, ...]]) -> str:
    def cell(c: str) -> str:
        return c.replace("|", "\\|") or " "
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def failure_detail(r: Run) -> list[str]:
    """Each failure kind per path: how many, how many on a reused keep-alive connection, when, and latency."""
    res = r.result
    groups: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for rec in res.failures:
        groups[(rec.kind(res.ok_statuses), rec.path)].append(rec)
    lines = []
    for (kind, path), recs in sorted(groups.items(), key=lambda kv: kv[1][0].start):
        reused = sum(1 for x in recs if x.reused)
        first, last = min(x.start for x in recs), max(x.start for x in recs)
        lat = sorted(x.latency for x in recs)
        when = f"t={first:.2f}s" if len(recs) == 1 else f"t={first:.2f} to {last:.2f}s"
        lines.append(f"{kind} on {path}: {len(recs)} ({reused} on a reused keep-alive connection), {when}, "
                     f"latency {lat[0] * 1000:.0f} to {lat[-1] * 1000:.0f} ms")
    return lines


def report(runs: Sequence[Run], started: float, loads: tuple[float, float], args: argparse.Namespace) -> str:
    rows = [row(r) for r in runs]
    print("\n" + text_table(rows) + "\n")
    md = [
        "# Downtime across a deploy",
        "",
        f"`{shlex.join(['bench/downtime.py', *sys.argv[1:]])}`, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{args.version}, "
        f"{os.cpu_count()} CPUs, load average {loads[0]:.1f} at start and {loads[1]:.1f} at the end, "
        f"{(time.monotonic() - started) / 60:.1f} min in all. Load: {args.rate:g} req/s from {args.workers} keep-alive "
        f"connections through the proxy (GET /api/version and / alternately; POST /api/items at {args.post_rate:g} "
        "req/s in `post`), from "
        f"{LEAD:g} s before the deploy to {TAIL:g} s after it; a request counts as ok only with a whole 2xx response. "
        "Images are built before the load starts"
        + (" (here: the whole `shipline deploy`, build included, is measured)." if args.build_in_deploy else
           "; shipline runs as `shipline deploy --no-build --ref SHA` after `shipline publish --ref SHA`."),
        "",
        "*longest gap*: the longest time without any successful response (all paths together); *worst path gap*: "
        "the same for the path that fared worst, which shows an outage of /api hidden by / still answering; "
        "*still failing at the end*: that path's last request failed, so its outage went on past the load window "
        "and is undercounted. *failed (N before the deploy)*: N failures came before the deploy started, i.e. from "
        "the load alone. *requests* shows the rate actually sent (the generator drops slots it cannot send on time).",
        "",
        md_table(rows),
        "",
        "## Failures in detail",
        "",
        "Times are seconds since the load started (the deploy starts at about "
        f"{LEAD:g} s); marks are the phases as the deploy reported them.",
        "",
    ]
    for r in runs:
        md.append(f"### {r.setup} · {r.scenario.key}")
        md.append("")
        md.append(f"- {r.result.summary()}")
        md.append("- marks: " + ", ".join(f"{label} @ {t:.2f}s" for t, label in r.result.marks))
        md.extend(f"- switch: {s}" for s in r.outcome.switches)
        if r.scenario.long_request:
            md.append(f"- long request: {long_status(r)}")
        md.append("- listen-queue overflows (SYNs dropped by a full accept queue): "
                  + (", ".join(f"{n}: {v}" for n, v in r.overflows.items()) or "none"))
        md.extend(f"- {line}" for line in failure_detail(r) or ["no failed request"])
        md.append("")
    text = "\n".join(md)
    (OUT / "downtime.md").write_text(text)
    return text


def plot(runs: Sequence[Run]) -> list[Path]:
    paths = []
    for sc in SCENARIOS:
        mine = [(r.setup, r.result) for r in runs if r.scenario.key == sc.key]
        if mine:
            what = "POST /api/items" if sc.post else "GET /api/version and /"
            paths.append(plot_runs(mine, OUT / f"downtime-{sc.key}.png",
                                   f"Deploy under {mine[0][1].rate:g} req/s ({what}) — scenario: {sc.title}"))
    return paths


def describe_source() -> str:
    """The commit measured, and whether shipline's source or the example differed from it."""
    head = run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"], check=False).stdout.strip()
    dirty = run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src", "examples"], check=False).stdout.strip()
    return f"{head[:90]}{' (with uncommitted changes in src/ or examples/)' if dirty else ''}"


def main() -> int:
    global OUT
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setups", default=",".join(SETUP_KEYS),
                        help=f"comma-separated subset of {','.join(SETUP_KEYS)} (default: all)")
    parser.add_argument("--scenarios", default=",".join(SCENARIO_KEYS),
                        help=f"comma-separated subset of {','.join(SCENARIO_KEYS)} (default: all)")
    parser.add_argument("--rate", type=float, default=RATE, help=f"requests per second (default {RATE:g})")
    parser.add_argument("--post-rate", type=float, default=None,
                        help="requests per second in the post scenario (default: --rate)")
    parser.add_argument("--workers", type=int, default=WORKERS, help=f"load connections (default {WORKERS})")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where results go (default {OUT.relative_to(ROOT)})")
    parser.add_argument("--shipline-src", type=Path, default=None,
                        help="directory holding another `shipline` package to measure (e.g. an older commit's src/, "
                        "from `git archive COMMIT src | tar -x`); default: a snapshot of this checkout's src/")
    parser.add_argument("--build-in-deploy", action="store_true",
                        help="measure the whole `shipline deploy` (build, test, push included), not --no-build")
    args = parser.parse_args()
    OUT = args.out.resolve()
    args.post_rate = args.post_rate or args.rate
    args.setups = [s for s in args.setups.split(",") if s]
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    for value, allowed in ((args.setups, SETUP_KEYS), (args.scenarios, SCENARIO_KEYS)):
        if bad := [v for v in value if v not in allowed]:
            parser.error(f"unknown {', '.join(bad)}; choose from {', '.join(allowed)}")
    scenarios = [s for s in SCENARIOS if s.key in args.scenarios]
    if args.shipline_src and not (args.shipline_src / "shipline" / "__main__.py").is_file():
        parser.error(f"{args.shipline_src} holds no shipline package")

    started, load0 = time.monotonic(), os.getloadavg()[0]
    tag = secrets.token_hex(3)
    tmp = Path(tempfile.mkdtemp(prefix=f"dt-{tag}-"))
    if args.shipline_src:
        source = args.shipline_src.resolve()
        args.version = f"shipline from {source}, the example at {describe_source()}"
    else:
        source = tmp / "src"
        shutil.copytree(ROOT / "src" / "shipline", source / "shipline", ignore=shutil.ignore_patterns("__pycache__"))
        args.version = f"shipline and the example at {describe_source()}"
    makers: dict[str, Callable[[], Setup]] = {
        "recreate": lambda: Recreate(tmp, f"dt-{tag}-rc"),
        "traefik": lambda: Shipline(tmp, f"dt-{tag}-tr", "traefik", args.build_in_deploy, source),
        "caddy": lambda: Shipline(tmp, f"dt-{tag}-ca", "caddy", args.build_in_deploy, source),
    }
    setups = [makers[k]() for k in SETUP_KEYS if k in args.setups]
    OUT.mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    try:
        # Not measured: every stack up and every release built, all setups at once.
        with ThreadPoolExecutor(len(setups)) as pool:
            for fut in [pool.submit(s.prepare, scenarios) for s in setups]:
                fut.result()
        log("bench", f"prepared in {(time.monotonic() - started) / 60:.1f} min; measuring")
        # Measured one at a time: scenario by scenario, each setup in turn.
        for sc in scenarios:
            for s in setups:
                r = measure(s, sc, args.post_rate if sc.post else args.rate, args.workers)
                runs.append(r)
                log(s.key, f"{sc.key}: {r.result.summary()}; deploy {r.outcome.duration:.1f}s: {r.outcome.result}"
                    + (f"; long request {long_status(r)}" if sc.long_request else ""))
                r.result.save(OUT / f"downtime-{sc.key}-{s.key}.json")
                if r.outcome.log and s.key != "recreate":
                    (OUT / f"downtime-{sc.key}-{s.key}.log").write_text(r.outcome.log)
                s.recover()
    finally:
        for s in setups:
            with contextlib.suppress(Exception):
                s.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
        if runs:
            report(runs, started, (load0, os.getloadavg()[0]), args)
            for p in plot(runs):
                print(p)
            print(OUT / "downtime.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
