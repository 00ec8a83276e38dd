#!/usr/bin/env python3
"""Where does `shipline deploy` spend its time, next to the raw docker operations it wraps?

Deploys examples/fullstack (a fresh git repository, as tests/integration/stack.py makes it) twice with
`shipline deploy`, the second time after a backend change, and reads each deploy's stage durations from
`shipline releases --json`. Then, in the same run, it makes one more backend change and does the same work by
hand, as a hand-written CI job + deploy.sh would: git archive | tar, the plan's `docker buildx build` commands
in parallel, docker run of the test step, docker push in parallel, then over ssh/scp: upload the compose file,
image override and env file, docker pull, `docker compose run` (migration), `docker compose up -d --wait`
(its proxy routes, to the Compose service names, are written once beforehand, untimed).

Needs the test environment (scripts/testenv up). Run with shipline's interpreter:
    .venv/bin/python bench/pipeline.py [--port N] [--keep] [--rounds N]
--rounds N repeats the update (a shipline deploy, then a raw one, each after a backend commit) and reports
medians: on a shared machine single figures swing by seconds. The stack is removed at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import yaml

from shipline.release_files import env_file, override_file

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "fullstack"
TESTENV = Path("/var/lib/shipline-testenv/env")
STAGES = ("connect", "checkout", "build", "test", "publish", "deploy")
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@shipline.invalid",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@shipline.invalid"}


def run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command to completion; raise with its last output if it fails."""
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"`{shlex.join(argv)}` failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout


def timed(argv: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    run(argv, cwd=cwd)
    return time.perf_counter() - start


def testenv() -> dict[str, str]:
    if not TESTENV.is_file():
        sys.exit(f"{TESTENV} is missing: run `scripts/testenv up` first")
    values = {}
    for line in TESTENV.read_text().splitlines():
        key, sep, value = line.removeprefix("export ").partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return values


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RawRun:
    """The hand-made pipeline's steps: (stage, what ran, seconds)."""

    steps: list[tuple[str, str, float]] = field(default_factory=list)

    def add(self, stage: str, what: str, seconds: float) -> None:
        self.steps.append((stage, what, seconds))

    def step(self, stage: str, argv: list[str], cwd: Path | None = None, show: str | None = None) -> None:
        self.add(stage, show or shlex.join(argv), timed(argv, cwd))

    def parallel(self, stage: str, commands: list[list[str]], cwd: Path | None = None) -> None:
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=len(commands)) as pool:
            each = list(pool.map(lambda argv: timed(argv, cwd), commands))
        what = "\n".join(f"[{s:5.1f}s in parallel] {shlex.join(c)}" for c, s in zip(commands, each, strict=True))
        self.add(stage, what, time.perf_counter() - start)

    def total(self, stage: str) -> float:
        return sum(s for st, _, s in self.steps if st == stage)


class Bench:
    def __init__(self, tmp: Path, app: str, port: int) -> None:
        self.tmp, self.app, self.port = tmp, app, port
        self.testenv = testenv()
        self.ports = {"HTTPS_PORT": str(port), "PROXY_API_PORT": str(free_port())}
        self.env = {**os.environ, **self.testenv, **GIT_ENV, **self.ports}
        self.repo = tmp / app
        self.password = secrets.token_urlsafe(12)
        self.config: dict[str, Any] = {}
        known = tmp / "known_hosts"  # the pinned key, as a hand-written deploy would pin it
        known.write_text(f"[127.0.0.1]:2222 {self.testenv['SHIPLINE_HOST_KEY']}\n")
        opts = ["-i", self.testenv["SHIPLINE_SSH_KEY"], "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={known}", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]
        self.ssh = ["ssh", "-p", "2222", *opts, "deploy@127.0.0.1"]
        self.scp = ["scp", "-P", "2222", "-p", "-q", *opts]
        self.remote_dir = f"bench-raw/{app}"
        self.handshake, self.home = 0.0, ""

    def git(self, *args: str) -> str:
        return run(["git", "-C", str(self.repo), *args], env=self.env).strip()

    def shipline(self, *args: str) -> str:
        return run([sys.executable, "-m", "shipline", *args], cwd=self.repo, env=self.env)

    def make_repo(self) -> None:
        shutil.copytree(EXAMPLE, self.repo, ignore=shutil.ignore_patterns(".shipline", "__pycache__"))
        cfg = self.repo / "shipline.yml"
        cfg.write_text(cfg.read_text().replace("app: fullstack", f"app: {self.app}", 1))
        self.config = yaml.safe_load(cfg.read_text())
        (self.repo / ".shipline").mkdir()
        (self.repo / ".shipline" / "secrets").write_text(f"POSTGRES_PASSWORD={self.password}\n")
        self.git("init", "-q", "-b", "main")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "initial")

    def change_backend(self, n: int) -> tuple[str, str]:
        """A commit that touches the backend's code, as a team's next commit would; returns (sha, short sha)."""
        with (self.repo / "backend" / "app" / "web.py").open("a") as f:
            f.write(f"\n# bench change {n}\n")
        self.git("commit", "-q", "-am", f"backend change {n}")
        return self.git("rev-parse", "HEAD"), self.git("rev-parse", "--short=7", "HEAD")

    def shipline_deploy(self) -> tuple[float, str]:
        start = time.perf_counter()
        out = self.shipline("deploy")
        return time.perf_counter() - start, out

    def stages(self) -> dict[str, dict[str, float]]:
        """sha -> stage durations, from the release history."""
        rows = json.loads(self.shipline("releases", "--json"))
        return {r["sha"]: dict(r["stages"]) for r in rows if r["status"] == "succeeded"}

    def plan_builds(self, sha: str) -> dict[str, list[str]]:
        """service -> the exact `docker buildx build` argv `shipline plan` prints for this commit."""
        lines = self.shipline("plan", "--ref", sha).splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("2. build"))
        end = next(i for i, line in enumerate(lines) if line.startswith("3. test"))
        builds: dict[str, list[str]] = {}
        service = ""
        for line in lines[start + 1:end]:  # `svc: build: why`, then the argv; or `svc: reuse: ...`
            text = line.strip()
            if text.startswith("docker buildx build"):
                builds[service] = shlex.split(text)
            else:
                service = text.split(":", 1)[0]
        return builds

    def wait_version(self, short: str, timeout: float = 30) -> None:
        """Not timed: the proxy serves the deployed commit (it may take a moment to see new containers)."""
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        deadline, seen = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{self.port}/api/version", context=ctx, timeout=5) as r:
                    seen = json.loads(r.read())["version"]
                if seen == short:
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the app serves version {seen!r}, expected {short}")

    def raw_pipeline(self, sha: str, n: int) -> RawRun:
        raw = RawRun()
        work = self.tmp / f"raw-checkout-{n}"
        work.mkdir()
        try:
            return self._raw_pipeline(raw, sha, work, self.tmp / f"raw-files-{n}")
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _raw_pipeline(self, raw: RawRun, sha: str, work: Path, files: Path) -> RawRun:
        # --no-same-permissions: git archive writes mode 664 and root's tar would keep it; BuildKit's cache keys
        # include file modes, so 664 misses the layers built from shipline's 644 checkout (a ~9s pip install).
        tar = ["tar", "-x", "--no-same-permissions", "-C", str(work)]
        start = time.perf_counter()
        git = subprocess.Popen(["git", "-C", str(self.repo), "archive", sha], stdout=subprocess.PIPE)
        subprocess.run(tar, stdin=git.stdout, check=True)
        assert git.stdout
        git.stdout.close()
        if git.wait() != 0:
            raise RuntimeError("git archive failed")
        raw.add("checkout", f"git -C {self.repo} archive {sha} | {shlex.join(tar)}", time.perf_counter() - start)

        builds = self.plan_builds(sha)
        images = {svc: argv[argv.index("--tag") + 1] for svc, argv in builds.items()}
        raw.parallel("build", list(builds.values()), cwd=work)
        test = self.config["test"][0]
        raw.step("test", ["docker", "run", "--rm", images[test["service"]], "sh", "-c", test["run"]])
        raw.parallel("publish", [["docker", "push", ref] for ref in images.values()])

        # deploy.sh: the release's files, written the way shipline writes them (image override + env file).
        files.mkdir()
        shutil.copy(work / str(self.config["compose"]), files / "docker-compose.yml")
        (files / "shipline.override.yml").write_text(override_file(images, (), 0))
        envf = files / ".env"
        # Not part of any stage: what one ssh connection costs here (each raw deploy step opens its own).
        self.handshake = min(timed([*self.ssh, "true"]) for _ in range(3))
        self.home = self.home or run([*self.ssh, "pwd"]).strip()
        proxy_dir = f"{self.home}/.shipline/{self.app}/proxy"  # shipline's: the proxy's mount stays the same
        envf.write_text(env_file(self.app, proxy_dir, self.ports, {"POSTGRES_PASSWORD": self.password}))
        envf.chmod(0o600)
        if "proxy" in self.config:  # shipline.yml `proxy:` (Traefik reading route files shipline writes)
            self.static_routes(proxy_dir)
        d = self.remote_dir
        compose = ["docker", "compose", "--project-name", self.app, "--file", f"{d}/docker-compose.yml",
                   "--file", f"{d}/shipline.override.yml", "--env-file", f"{d}/.env"]

        def remote(*argv: str) -> None:
            raw.step("deploy", [*self.ssh, shlex.join(argv)], show=f"$SSH {shlex.quote(shlex.join(argv))}")

        remote("mkdir", "-p", d)
        paths = [str(p) for p in sorted(files.iterdir())]
        raw.step("deploy", [*self.scp, *paths, f"deploy@127.0.0.1:{d}/"], show=f"$SCP {' '.join(paths)} $HOST:{d}/")
        for ref in images.values():
            remote("docker", "pull", "-q", ref)
        migrate = self.config["deploy"]["migrate"]
        remote(*compose, "run", "--rm", "--no-deps", "-T", migrate["service"], "sh", "-c", migrate["command"])
        remote(*compose, "up", "--detach", "--wait", "--wait-timeout", "120", "--no-build")
        return raw

    def static_routes(self, proxy_dir: str) -> None:
        """Untimed one-off setup of a hand-made stack: Traefik file routes to the Compose service names (as
        shipline's proxies.traefik_dynamic writes them, but to `backend:8000`, not to one container's IP)."""
        routes = self.tmp / "routes"
        routes.mkdir(exist_ok=True)
        for svc, route in self.config["proxy"]["routes"].items():
            name = f"{self.app}-{svc}"
            router = {"rule": f"PathPrefix(`{route['path']}`)", "service": name, "entryPoints": ["websecure"],
                      "tls": {}}
            servers = [{"url": f"http://{svc}:{route['port']}"}]
            doc = {"http": {"routers": {name: router}, "services": {name: {"loadBalancer": {"servers": servers}}}}}
            (routes / f"{name}.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
        run([*self.scp, *(str(p) for p in sorted(routes.iterdir())), f"deploy@127.0.0.1:{proxy_dir}/"])

    def cleanup(self, keep: bool) -> None:
        if keep:
            print(f"\n--keep: {self.app} stays up at https://127.0.0.1:{self.port}/ (repository {self.repo}); remove with\n"
                  f"  docker compose --project-name {self.app} down --volumes --remove-orphans")
            return
        subprocess.run(["docker", "compose", "--project-name", self.app, "down", "--volumes", "--remove-orphans"],
                       capture_output=True, check=False)
        subprocess.run([*self.ssh, f"rm -rf {shlex.quote(self.remote_dir)} .shipline/{shlex.quote(self.app)}"],
                       capture_output=True, check=False)
        refs = subprocess.run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                               f"reference=127.0.0.1:5000/{self.app}/*"], capture_output=True, text=True).stdout.split()
        if refs:
            subprocess.run(["docker", "image", "rm", *refs], capture_output=True, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def fmt(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.2f}s"


def report(bench: Bench, first: dict[str, float], updates: list[dict[str, float]], raws: list[RawRun],
           walls: tuple[float, list[float]], detail: list[str]) -> None:
    n = len(raws)
    upd, raw_head = ("shipline #2", "raw ops") if n == 1 else (f"shipline x{n}", f"raw x{n}")
    print(f"\n{'stage':<10} {'shipline #1':>12} {upd:>12} {raw_head:>10} {'overhead':>10} {'ratio':>7}"
          + ("" if n == 1 else "   (medians over rounds)"))
    rows: list[tuple[str, float, float, float | None]] = [
        (st, first.get(st, 0.0), median(u.get(st, 0.0) for u in updates),
         median(r.total(st) for r in raws) if st != "connect" else None) for st in STAGES]
    raw_total = median(sum(s for _, _, s in r.steps) for r in raws)
    rows.append(("total", sum(first.values()), median(sum(u.values()) for u in updates), raw_total))
    rows.append(("wall", walls[0], median(walls[1]), raw_total))  # the whole CLI process: startup, plan, history
    for name, one, two, raw_s in rows:
        ratio = f"{two / raw_s:.2f}x" if raw_s else "—"
        print(f"{name:<10} {fmt(one):>12} {fmt(two):>12} {fmt(raw_s):>10} {two - (raw_s or 0.0):>+9.2f}s {ratio:>7}")
    print(f"\nraw ops{'' if n == 1 else ' (last round)'}; $SSH = {shlex.join(bench.ssh)}\n"
          f"  $SCP = {shlex.join(bench.scp)}, $HOST = deploy@127.0.0.1")
    for stage, what, seconds in raws[-1].steps:
        lines = what.splitlines()
        print(f"  {stage:<9} {seconds:6.2f}s  {lines[0]}")
        for line in lines[1:]:
            print(f"  {'':<9} {'':>7}  {line}")
    connections = sum(1 for st, _, _ in raws[-1].steps if st == "deploy")
    print(f"\nssh connection setup (min of 3 `$SSH true`): {bench.handshake:.2f}s; the raw deploy opened {connections} "
          f"(~{connections * bench.handshake:.1f}s), shipline opens one (connect stage)")
    print("\nshipline update deploys: health gates and proxy switches, in deploy.order")
    for line in detail:
        print(f"  {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="loopback HTTPS port for the app (default: a free one)")
    parser.add_argument("--keep", action="store_true", help="leave the stack running (and its repository) afterwards")
    parser.add_argument("--rounds", type=int, default=1, help="update deploys, each a shipline deploy then a raw one "
                        "(default 1); more rounds report medians, for a busy machine")
    args = parser.parse_args()
    app = f"bench-{secrets.token_hex(3)}"
    bench = Bench(Path(tempfile.mkdtemp(prefix=f"{app}-")), app, args.port or free_port())
    print(f"app {app} on https://127.0.0.1:{bench.port}/, repository {bench.repo}")
    load = os.getloadavg()
    try:
        bench.make_repo()
        wall1, _ = bench.shipline_deploy()
        sha1, short1 = bench.git("rev-parse", "HEAD"), bench.git("rev-parse", "--short=7", "HEAD")
        bench.wait_version(short1)
        print(f"shipline deploy #1 ({short1}): {wall1:.1f}s")
        shas, walls, raws, detail = [], [], [], []
        for n in range(args.rounds):
            sha, short = bench.change_backend(2 * n + 2)
            wall, out = bench.shipline_deploy()
            bench.wait_version(short)
            print(f"shipline deploy #{n + 2} ({short}): {wall:.1f}s")
            shas.append(sha)
            walls.append(wall)
            detail += [f"#{n + 2} {line.strip()}" for line in out.splitlines()
                       if any(w in line for w in ("healthy after", "switched", "draining", "stopped"))]
            sha, short = bench.change_backend(2 * n + 3)
            raws.append(bench.raw_pipeline(sha, n))
            bench.wait_version(short)
            print(f"raw pipeline ({short}): {sum(s for _, _, s in raws[-1].steps):.1f}s")
        stages = bench.stages()
        report(bench, stages[sha1], [stages[s] for s in shas], raws, (wall1, walls), detail)
        print(f"\nload average at start {load[0]:.1f}, now {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    finally:
        bench.cleanup(args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
