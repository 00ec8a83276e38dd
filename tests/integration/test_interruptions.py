"""A deploy killed (kill -9) or cut off (its SSH session killed on the server) at every phase, under load through
the proxy: no request fails, and the next deploy takes the lock by itself, repairs what was left and succeeds.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipline.errors import ExitCode

from .load import LoadGenerator
from .stack import AppRepo, compose_down, make_app_repo

pytestmark = pytest.mark.integration
RATE = 200
SERVICES = ("proxy", "db", "backend", "frontend")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppRepo]:
    name = f"ki{uuid.uuid4().hex[:8]}"
    repo = make_app_repo(Path(tmp_path_factory.mktemp(name)), name)
    # The next deploy gives up after 10 s if a dead deploy's lock were still held.
    repo.edit("shipline.yml", "  keep_releases: 5", "  keep_releases: 5\n  lock_wait: 10")
    # A drain that outlasts Docker's own health check after the switch, so "draining old" is a phase to kill in.
    repo.edit("shipline.yml", "backend: {health_timeout: 45, drain: 1,", "backend: {health_timeout: 45, drain: 6,")
    repo.commit("wait at most 10 s for the lock; drain the old backend for 6 s")
    try:
        res = repo.shipline("deploy")
        assert res.code == 0, res.out
        yield repo
    finally:
        compose_down(name)


def start_deploy(app: AppRepo) -> subprocess.Popen[str]:
    """A deploy of a new commit that changes the backend and the frontend (the live commit again is a no-op)."""
    label = uuid.uuid4().hex[:8]
    app.edit("backend/app/web.py", '"""HTTP layer', f'# interrupted {label}\n"""HTTP layer')
    app.edit("frontend/www/index.html", "<h1>", f"<h1>{label} ")
    app.commit(f"change backend and frontend {label}")
    return subprocess.Popen([sys.executable, "-m", "shipline", "deploy", "--config", "shipline.yml"], cwd=app.path,
                            env=app.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_until(proc: subprocess.Popen[str], marker: str) -> str:
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"the deploy ended before {marker!r}:\n{''.join(seen)}")


def containers(app: AppRepo, service: str) -> list[str]:
    return subprocess.run(["docker", "ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={app.app}",
                           "--filter", f"label=com.docker.compose.service={service}",
                           "--filter", "label=com.docker.compose.oneoff=False"],
                          capture_output=True, text=True, check=True).stdout.split()


def releases(app: AppRepo) -> list[dict[str, object]]:
    data: list[dict[str, object]] = json.loads(app.shipline("releases", "--json").out)
    return data


def heal_and_check(app: AppRepo, interrupted: int) -> str:
    """The next deploy, with no `lock release`: it must take the lock, repair, succeed, leave one container each."""
    res = app.shipline("deploy")
    assert res.code == 0, res.out
    assert "healed:" in res.out
    for svc in SERVICES:
        assert len(containers(app, svc)) == 1, f"{svc}: {containers(app, svc)}"
    record = next(r for r in releases(app) if r["number"] == interrupted)
    assert record["status"] == "interrupted", record
    return res.out


@pytest.mark.parametrize("marker", [
    "pulled ",                      # after pull (of what the host lacks)
    "migrations done",              # after migration
    "backend healthy after",        # the new backend is healthy, not yet switched to
    "backend: proxy switched to",   # just after a proxy switch
    "draining old",                 # while retiring the old containers
])
def test_kill_9_at_each_phase_fails_no_request_and_the_next_deploy_heals(app: AppRepo, marker: str) -> None:
    with LoadGenerator(app.url, rate=RATE, workers=16, paths=["/api/version", "/"]) as gen:
        time.sleep(1)
        proc = start_deploy(app)
        out = read_until(proc, marker)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        number = int(re.search(r"release (\d+):", out).group(1))  # type: ignore[union-attr]
        heal_and_check(app, number)
        time.sleep(1)
    assert gen.result is not None
    print(gen.result.summary())
    assert gen.result.total >= 0.5 * RATE * 10, gen.result.summary()
    assert gen.result.failed == 0, f"{gen.result.failures_by_kind()} {gen.result.summary()}"


def server_sessions(client_pid: int) -> list[int]:
    """The sshd processes serving the SSH connection(s) of one client process (found through the sockets)."""
    sockets = subprocess.run(["ss", "-tnpH"], capture_output=True, text=True, check=True).stdout.splitlines()
    ports = {line.split()[3].rsplit(":", 1)[1] for line in sockets if f"pid={client_pid}," in line and ":2222" in line.split()[4]}
    pids = []
    for line in sockets:
        fields = line.split()
        if len(fields) > 5 and fields[3].endswith(":2222") and fields[4].rsplit(":", 1)[1] in ports:
            pids += [int(p) for p in re.findall(r"pid=(\d+)", fields[5])]
    return pids


@pytest.mark.parametrize("marker", ["pulled ", "backend healthy after", "backend: proxy switched to"])
def test_a_dropped_ssh_connection_is_a_clear_failure_and_the_next_deploy_heals(app: AppRepo, marker: str) -> None:
    serving = app.version()
    with LoadGenerator(app.url, rate=RATE, workers=16, paths=["/api/version", "/"]) as gen:
        time.sleep(1)
        proc = start_deploy(app)
        out = read_until(proc, marker)
        sessions = server_sessions(proc.pid)
        assert sessions, "found the deploy's SSH session on the server"
        for pid in sessions:
            subprocess.run(["kill", "-KILL", str(pid)], check=False)
        rest = proc.communicate(timeout=300)[0]
        out += rest
        assert proc.returncode in (ExitCode.DEPLOY_FAILED, ExitCode.HOST_UNREACHABLE), out
        assert "Traceback" not in out and "dropped" in out
        assert app.version() == serving
        res = app.shipline("deploy")
        assert res.code == 0, res.out
        for svc in SERVICES:
            assert len(containers(app, svc)) == 1, f"{svc}: {containers(app, svc)}"
        time.sleep(1)
    assert gen.result is not None
    print(gen.result.summary())
    assert gen.result.failed == 0, f"{gen.result.failures_by_kind()} {gen.result.summary()}"


def test_a_connection_dropped_while_building_stops_the_deploy_then(app: AppRepo) -> None:
    """The build runs beside the locked hosts: the deploy watches their locks while it waits for it, so a dropped
    connection stops it at once (the build, a step that would sleep for 10 minutes, is killed), and the next
    deploy heals."""
    serving = app.version()
    original = (app.path / "backend/Dockerfile").read_text()
    app.edit("backend/Dockerfile", "COPY app ./app\n", "COPY app ./app\nRUN sleep 600\n")
    short = app.commit("a build that never ends")
    try:
        proc = subprocess.Popen([sys.executable, "-m", "shipline", "deploy", "--config", "shipline.yml"], cwd=app.path,
                                env=app.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = read_until(proc, f"{app.app} at {short} (")  # recorded on the host; the build is under way
        out += read_until(proc, "build backend ...") if "build backend ..." not in out else ""
        time.sleep(2)  # the release's files are on the host by now (about 0.3 s): the deploy waits for the build
        for pid in server_sessions(proc.pid):
            subprocess.run(["kill", "-KILL", str(pid)], check=False)
        out += proc.communicate(timeout=120)[0]  # not 600 s: the build was killed, not waited for
        assert proc.returncode in (ExitCode.DEPLOY_FAILED, ExitCode.HOST_UNREACHABLE), out
        assert "Traceback" not in out and ("lock was lost" in out or "dropped" in out), out
        assert app.version() == serving
    finally:
        (app.path / "backend/Dockerfile").write_text(original)
        app.commit("the build ends again")
    heal_and_check(app, next(r["number"] for r in releases(app) if r["short_sha"] == short))
