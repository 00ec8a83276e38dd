#!/usr/bin/env python3
"""How fast does a change go live, next to the physical floor measured in the same run (issue 9's goals)?

On examples/fullstack (a fresh repository, as bench/pipeline.py makes it), in one run, medians of --rounds:

- backend-only change, push to live: from `shipline deploy` starting to the proxy serving the new commit's
  `/api/version`; against the *physical floor*, the raw operations such a change cannot avoid, each timed
  by hand: `docker buildx build` of the backend (the plan's own argv: only the changed layers rebuild),
  `docker push`, `docker pull` on the host, the migration (`docker compose run` of the new image), a new
  backend container from start to its first passing health check (probed every 0.1 s), and one proxy switch
  (a Traefik route file written and seen through Traefik's API). Goal: at most 1.3x.
- no-op: `shipline deploy` of the commit that is already live. Goal: under 3 s.
- rollback: `shipline rollback` to the previous release (its images are on the host). Goal: under 5 s.
- start-up: `shipline --help`, next to the bare interpreter start. Goal: under 0.3 s.

Needs the test environment (scripts/testenv up). Run with shipline's interpreter:
    .venv/bin/python bench/speed.py [--rounds 3] [--keep]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from statistics import median

import yaml

import shipline

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import Bench, free_port, run  # bench/pipeline.py: the example repository helpers

GOALS = {"push-to-live / floor": 1.3, "no-op deploy": 3.0, "rollback": 5.0, "shipline --help": 0.3}


def wall(argv: list[str], **kw: object) -> float:
    start = time.perf_counter()
    run(argv, **kw)  # type: ignore[arg-type]
    return time.perf_counter() - start


class Speed(Bench):
    test_times: list[float]

    def live_deploy(self, short: str) -> float:
        """Push to live: `shipline deploy` started -> the proxy serves `short` (polled every 0.05 s)."""
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "shipline", "deploy"], cwd=self.repo, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        live = None
        while live is None:
            if self.serves(short):
                live = time.perf_counter() - start
            elif proc.poll() is not None and not self.serves(short):
                raise RuntimeError(f"deploy ended without serving {short}:\n{proc.stdout.read()[-3000:] if proc.stdout else ''}")
            else:
                time.sleep(0.05)
        out, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"shipline deploy failed:\n{out[-3000:]}")
        self.last_out = out
        return live

    def serves(self, short: str) -> bool:
        import ssl

        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{self.port}/api/version", context=ctx, timeout=2) as r:
                return bool(json.loads(r.read())["version"] == short)
        except (OSError, ValueError, KeyError):
            return False

    def floor(self, sha: str, n: int) -> dict[str, float]:
        """The raw operations a backend change cannot avoid, each timed (the app keeps serving untouched)."""
        work = self.tmp / f"floor-{n}"
        work.mkdir()
        git = subprocess.Popen(["git", "-C", str(self.repo), "archive", sha], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "--no-same-permissions", "-C", str(work)], stdin=git.stdout, check=True)
        git.wait()
        argv = self.plan_builds(sha)["backend"]
        ref = argv[argv.index("--tag") + 1]
        # Each raw step over ssh opens a connection (shipline keeps one open): its setup is not part of the floor.
        hs = self.handshake = min(wall([*self.ssh, "true"]) for _ in range(3))
        t: dict[str, float] = {"build": wall(argv, cwd=work), "push": wall(["docker", "push", "-q", ref])}
        t["pull"] = wall([*self.ssh, shlex.join(["docker", "pull", "-q", ref])]) - hs
        files = self.tmp / f"floor-files-{n}"
        files.mkdir()
        (files / "docker-compose.yml").write_text((work / "docker-compose.prod.yml").read_text())
        (files / "override.yml").write_text(yaml.safe_dump({"services": {"backend": {"image": ref}}}))
        (files / ".env").write_text(f"POSTGRES_PASSWORD={self.password}\nHTTPS_PORT={self.port}\n"
                                    f"PROXY_API_PORT={self.ports['PROXY_API_PORT']}\n")
        d = f"bench-floor/{self.app}"
        run([*self.ssh, f"mkdir -p {d}"])
        run([*self.scp, *(str(p) for p in sorted(files.iterdir())), f"deploy@127.0.0.1:{d}/"])
        compose = ["docker", "compose", "--project-name", self.app, "--file", f"{d}/docker-compose.yml",
                   "--file", f"{d}/override.yml", "--env-file", f"{d}/.env"]
        migrate = self.config["deploy"]["migrate"]["command"]
        t["migration"] = wall([*self.ssh, shlex.join([*compose, "run", "--rm", "--no-deps", "-T", "backend",
                                                      "sh", "-c", migrate])]) - hs
        name = f"{self.app}-floor-{n}"
        probe = shlex.join(["docker", "exec", name, "python", "-c", "import urllib.request; "
                            "urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=2)"])
        start_and_probe = (f"{shlex.join([*compose, 'run', '-d', '--no-deps', '--name', name, 'backend'])} >/dev/null && "
                           f"until {probe} 2>/dev/null; do sleep 0.1; done")
        t["start to healthy"] = wall([*self.ssh, start_and_probe]) - hs
        t["switch"] = self.raw_switch(name) - hs
        run([*self.ssh, shlex.join(["docker", "rm", "-f", name])])
        test = self.config["test"][0]  # not part of the floor; shown beside it (shipline runs it before pushing)
        self.test_times.append(wall(["docker", "run", "--rm", ref, "sh", "-c", test["run"]]))
        return t

    def raw_switch(self, container: str) -> float:
        """One Traefik file-provider switch: a route file for `container` written, then seen through the API."""
        ip = run([*self.ssh, shlex.join(["docker", "inspect", "--format",
                                         "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container])]).split()[0]
        name = f"{container}-route"
        doc = {"http": {"services": {name: {"loadBalancer": {"servers": [{"url": f"http://{ip}:8000"}]}}}}}
        path = f".shipline/{self.app}/proxy/{name}.yml"
        api = f"http://127.0.0.1:{self.ports['PROXY_API_PORT']}/api/http/services/{name}@file"
        start = time.perf_counter()
        subprocess.run([*self.ssh, f"cat > {shlex.quote(path)}"], input=yaml.safe_dump(doc), text=True, check=True)
        while True:
            try:
                with urllib.request.urlopen(api, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.02)
        took = time.perf_counter() - start
        run([*self.ssh, f"rm -f {shlex.quote(path)}"])
        return took


def help_times(n: int = 7) -> tuple[float, float]:
    """Medians of `shipline --help` and of the bare interpreter starting."""
    shipline = [wall([sys.executable, "-m", "shipline", "--help"]) for _ in range(n)]
    bare = [wall([sys.executable, "-c", "pass"]) for _ in range(n)]
    return median(shipline), median(bare)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of each measurement (medians reported)")
    parser.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    args = parser.parse_args()
    # shipline as installed: pip writes a package's bytecode at install time, but an editable checkout under
    # PYTHONDONTWRITEBYTECODE (set on this kind of machine) would compile shipline's source on every run.
    compileall.compile_dir(Path(shipline.__file__).parent, quiet=1)
    app = f"speed-{secrets.token_hex(3)}"
    bench = Speed(Path(tempfile.mkdtemp(prefix=f"{app}-")), app, free_port())
    bench.test_times = []
    print(f"app {app} on https://127.0.0.1:{bench.port}/, repository {bench.repo}; {args.rounds} round(s)")
    load = os.getloadavg()
    live: list[float] = []
    floors: list[dict[str, float]] = []
    noop: list[float] = []
    rollback: list[float] = []
    try:
        bench.make_repo()
        bench.live_deploy(bench.git("rev-parse", "--short=7", "HEAD"))  # first deploy: everything built, untimed
        for n in range(args.rounds):
            _, short = bench.change_backend(2 * n + 2)
            live.append(bench.live_deploy(short))
            print(f"round {n + 1}: backend change live in {live[-1]:.2f}s")
            sha, _ = bench.change_backend(2 * n + 3)
            floors.append(bench.floor(sha, n))
            print(f"round {n + 1}: floor {sum(floors[-1].values()):.2f}s "
                  + ", ".join(f"{k} {v:.2f}s" for k, v in floors[-1].items()))
        bench.live_deploy(bench.git("rev-parse", "--short=7", "HEAD"))  # the floor's last commit, so the next is a no-op
        for _ in range(args.rounds):
            noop.append(wall([sys.executable, "-m", "shipline", "deploy"], cwd=bench.repo, env=bench.env))
        for _ in range(args.rounds):
            rollback.append(wall([sys.executable, "-m", "shipline", "rollback"], cwd=bench.repo, env=bench.env))
        help_s, bare_s = help_times()
    finally:
        subprocess.run([*bench.ssh, f"rm -rf bench-floor/{shlex.quote(bench.app)}"], capture_output=True, check=False)
        bench.cleanup(args.keep)

    floor_total = median(sum(f.values()) for f in floors)
    live_m = median(live)
    print(f"\nmedians of {args.rounds} (same run)")
    test_m = median(bench.test_times)
    print(f"{'measure':<26} {'value':>9} {'against':>9} {'ratio':>7}  goal")
    rows = [  # (name, value, what it is compared with, goal for the ratio)
        ("push-to-live / floor", live_m, floor_total, GOALS["push-to-live / floor"]),
        ("no-op deploy", median(noop), GOALS["no-op deploy"], 1.0),
        ("rollback", median(rollback), GOALS["rollback"], 1.0),
        ("shipline --help", help_s, GOALS["shipline --help"], 1.0),
    ]
    for name, value, base, goal in rows:
        ratio = value / base
        print(f"{name:<26} {value:>8.2f}s {base:>8.2f}s {ratio:>6.2f}x  <= {goal:g}x {'ok' if ratio <= goal else 'MISSED'}")
    print(f"{'  (floor + test step)':<26} {live_m:>8.2f}s {floor_total + test_m:>8.2f}s "
          f"{live_m / (floor_total + test_m):>6.2f}x  the example's unit tests, {test_m:.2f}s, are outside the floor")
    print(f"bare interpreter start: {bare_s:.3f}s")
    print("\nfloor, medians per operation: " + ", ".join(
        f"{k} {median(f[k] for f in floors):.2f}s" for k in floors[0]))
    print("no-op runs: " + ", ".join(f"{s:.2f}s" for s in noop) + "; rollbacks: " + ", ".join(f"{s:.2f}s" for s in rollback))
    print(f"load average at start {load[0]:.1f}, now {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
