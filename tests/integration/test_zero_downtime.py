"""Zero-downtime rollouts on the real stack, under continuous load through the proxy: Traefik with routes in
shipline.yml, Caddy, and Traefik configured the usual way, with docker labels (examples/traefik-labels).

Every request the load generator sends is recorded; "zero failed" means every one of them got a 2xx.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shipline.errors import ExitCode

from .load import LoadGenerator, LoadResult, slow_request
from .stack import AppRepo, compose_down, make_app_repo, make_example_repo, registry_tags, use_caddy

pytestmark = pytest.mark.integration
RATE = 200  # requests per second through the proxy, as the issue asks


def under_load(app: AppRepo, *args: str) -> tuple[int, str, LoadResult]:
    with LoadGenerator(app.url, rate=RATE, workers=16, paths=["/api/version", "/"]) as gen:
        time.sleep(1)  # steady state before the deploy starts
        res = app.shipline(*args)
        time.sleep(1)
    assert gen.result is not None
    result = gen.result
    print(result.summary())
    return res.code, res.out, result


def backend_containers(app: AppRepo) -> list[str]:
    out = subprocess.run(["docker", "ps", "--filter", f"label=com.docker.compose.project={app.app}",
                          "--filter", "label=com.docker.compose.service=backend", "--format", "{{.ID}}"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def deployed(tmp_path_factory: pytest.TempPathFactory, prefix: str, caddy: bool = False,
             example: str | None = None) -> Iterator[AppRepo]:
    app = f"{prefix}{uuid.uuid4().hex[:8]}"
    tmp = Path(tmp_path_factory.mktemp(prefix))
    repo = make_example_repo(tmp, app, example) if example else make_app_repo(tmp, app)
    if caddy:
        use_caddy(repo)
    try:
        res = repo.shipline("deploy")
        assert res.code == 0, res.out
        assert repo.wait_version(repo.head()) == repo.head()
        yield repo
    finally:
        compose_down(app)


@pytest.fixture(scope="module")
def traefik_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppRepo]:
    yield from deployed(tmp_path_factory, "zd", caddy=False)


@pytest.fixture(scope="module")
def caddy_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppRepo]:
    yield from deployed(tmp_path_factory, "zc", caddy=True)


@pytest.fixture(scope="module")
def labels_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppRepo]:
    yield from deployed(tmp_path_factory, "zl", example="traefik-labels")


def change_backend_and_frontend(app: AppRepo, label: str) -> str:
    app.edit(f"{app.sources}backend/app/web.py", '"""HTTP layer', f'# {label}\n"""HTTP layer')
    app.edit(f"{app.sources}frontend/www/index.html", "<h1>", f"<h1>{label} ")
    return app.commit(label)


@pytest.mark.parametrize("proxy", ["traefik", "caddy", "labels"])
def test_deploy_under_load_fails_no_request_and_keeps_a_long_request(proxy: str, request: pytest.FixtureRequest) -> None:
    app: AppRepo = request.getfixturevalue(f"{proxy}_app")
    before = app.version()
    new = change_backend_and_frontend(app, f"zero-downtime {proxy}")
    slow = slow_request(app.url + "/api/slow?seconds={seconds}", 10)
    code, out, result = under_load(app, "deploy")
    assert code == 0, out
    assert result.total >= 0.8 * RATE * 10, result.summary()
    assert result.failed == 0, f"{result.failures_by_kind()} {result.summary()}"
    assert "proxy switched to" in out and "confirmed" in out
    assert "backend, frontend together (none depends on another)" in out, "independent services gate in parallel"
    long = slow.wait(60)
    assert long.status == 200, long
    assert app.wait_version(new) == new != before
    assert len(backend_containers(app)) == 1, "the old backend was stopped"


def test_label_routes_are_served_from_shiplines_files_with_their_middlewares(labels_app: AppRepo) -> None:
    app = labels_app
    page = app.get("/")
    assert page.status_code == 200 and page.headers["X-Served-By"] == "shipline-example"  # the labelled middleware
    assert app.get("/api/version").headers["X-Served-By"] == "shipline-example"  # shared by both routers
    traefik = subprocess.run(["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={app.app}",
                              "--filter", "label=com.docker.compose.service=traefik"], capture_output=True, text=True,
                             check=True).stdout.split()[0]
    address = json.loads(subprocess.run(["docker", "inspect", "--format", "{{json .NetworkSettings.Networks}}", traefik],
                                        capture_output=True, text=True, check=True).stdout)
    ip = next(iter(address.values()))["IPAddress"]
    routers = {r["name"] for r in httpx.get(f"http://{ip}:8080/api/http/routers", timeout=10).json()}
    assert {"backend@file", "frontend@file"} <= routers
    assert not any(r.endswith("@docker") for r in routers), "the docker provider no longer routes to them"
    labels = subprocess.run(["docker", "inspect", "--format", '{{index .Config.Labels "traefik.enable"}}',
                             *backend_containers(app)], capture_output=True, text=True, check=True).stdout.split()
    assert labels == ["false"]


PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], 2019), timeout=5).close()
    print("admin API reachable")
except OSError as exc:
    print("admin API closed:", exc)
"""


def test_caddy_admin_api_is_closed_to_containers_beside_the_proxy(caddy_app: AppRepo) -> None:
    app = caddy_app
    proxy = subprocess.run(["docker", "ps", "--quiet", "--filter", f"label=com.docker.compose.project={app.app}",
                            "--filter", "label=com.docker.compose.service=proxy"], capture_output=True, text=True,
                           check=True).stdout.split()[0]
    networks = json.loads(subprocess.run(["docker", "inspect", "--format", "{{json .NetworkSettings.Networks}}", proxy],
                                         capture_output=True, text=True, check=True).stdout)
    assert networks
    for name, net in networks.items():
        probe = subprocess.run(["docker", "run", "--rm", "--network", name, "python:3.11-slim", "python3", "-c", PROBE,
                                net["IPAddress"]], capture_output=True, text=True, timeout=60)
        assert "admin API closed" in probe.stdout, (name, probe.stdout, probe.stderr)
    assert app.get("/").status_code == 200  # while the routes shipline loaded inside the container serve


@pytest.mark.parametrize(("breakage", "reason"), [
    (("backend/app/__main__.py", "port=settings.port)", "port=settings.port + 1)"), "did not become healthy within"),
    (("backend/app/__main__.py", "    settings = Settings.from_env()", "    raise SystemExit(3)"), "crashed"),
])
def test_broken_release_fails_with_no_failed_request(traefik_app: AppRepo, breakage: tuple[str, str, str], reason: str) -> None:
    app = traefik_app
    serving = app.version()
    containers = backend_containers(app)
    app.edit(*breakage)
    app.commit(f"broken: {reason}")
    code, out, result = under_load(app, "deploy")
    assert code == ExitCode.DEPLOY_FAILED, out
    assert reason in out
    assert result.failed == 0, f"{result.failures_by_kind()} {result.summary()}"
    assert app.version() == serving
    assert backend_containers(app) == containers, "new containers removed, old one untouched"
    app.edit(breakage[0], breakage[2], breakage[1])
    app.commit("repair")


def test_failing_migration_stops_before_any_switch(traefik_app: AppRepo) -> None:
    app = traefik_app
    httpx.post(app.url + "/api/items", json={"text": "before the bad migration"}, verify=False, timeout=10)
    items = app.get("/api/items").json()
    serving, containers = app.version(), backend_containers(app)
    migrate = app.path / "backend" / "app" / "migrate.py"
    original = migrate.read_text()
    migrate.write_text(original.replace("def main(", "def _unused(", 1) + "\n\ndef main() -> None:\n    raise SystemExit('migration broken on purpose')\n")
    app.commit("a failing migration")
    res = app.shipline("deploy")
    assert res.code == ExitCode.DEPLOY_FAILED, res.out
    assert "migration failed" in res.out and "proxy switched" not in res.out
    assert app.version() == serving and backend_containers(app) == containers
    assert app.get("/api/items").json() == items
    migrate.write_text(original)
    app.commit("repair the migration")


def test_two_deploys_at_once_never_interleave(traefik_app: AppRepo) -> None:
    app = traefik_app
    head = change_backend_and_frontend(app, "concurrent")
    cmd = [sys.executable, "-m", "shipline", "deploy", "--config", "shipline.yml"]
    procs = [subprocess.Popen(cmd, cwd=app.path, env=app.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sum("waiting for the deploy lock" in o for o in outs) == 1, outs
    # The one that waited finds the other's release of the same commit live: "already live", nothing recorded.
    assert sum("already live" in o for o in outs) == 1, outs
    newest = json.loads(app.shipline("releases", "--json").out)[0]
    assert newest["status"] == "succeeded" and newest["short_sha"] == head
    assert app.version() == head


def hold_lock(app: AppRepo, holder: str) -> subprocess.Popen[str]:
    """Another deploy holding the host's lock over its own SSH connection, as a laptop would."""
    env = app.env
    script = (
        "import sys, time\n"
        "from shipline import lock\n"
        "from shipline.executors.ssh import SSHExecutor\n"
        "from shipline.layout import HostLayout\n"
        "from pathlib import Path\n"
        f"ex = SSHExecutor(address='deploy@127.0.0.1:2222', hostname='127.0.0.1', port=2222, user='deploy',"
        f" key_path=Path({env['SHIPLINE_SSH_KEY']!r}), pinned={env['SHIPLINE_HOST_KEY']!r})\n"
        f"lock.acquire(ex, HostLayout('.shipline', {app.app!r}), holder={holder!r}, commit='dead000', ttl=600, wait=0)\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_held_lock_refuses_clearly_and_a_killed_holder_frees_it_at_once(traefik_app: AppRepo) -> None:
    app = traefik_app
    config = app.path / "shipline.yml"
    original = config.read_text()
    config.write_text(original.replace("  keep_releases: 5", "  keep_releases: 5\n  lock_wait: 0"))
    (app.path / "shipline.wait10.yml").write_text(original.replace("  keep_releases: 5", "  keep_releases: 5\n  lock_wait: 10"))
    app.commit("do not wait for the lock")
    other = hold_lock(app, "laptop-of-bob")
    held = app.shipline("deploy")
    assert held.code == ExitCode.LOCKED, held.out
    assert "held by laptop-of-bob deploying dead000" in held.out
    status = app.shipline("lock", "status")
    assert "held by laptop-of-bob" in status.out and "its process is gone" not in status.out
    other.send_signal(signal.SIGKILL)  # the other deploy dies without releasing anything
    other.wait()
    res = app.shipline("deploy", config="shipline.wait10.yml")  # gives up after 10 s if the lock were still held
    assert res.code == 0, res.out
    assert "unlocked" in app.shipline("lock", "status").out


def test_sigterm_mid_deploy_leaves_the_old_release_serving_and_a_record(traefik_app: AppRepo) -> None:
    app = traefik_app
    serving = app.version()
    change_backend_and_frontend(app, "interrupted")
    proc = subprocess.Popen([sys.executable, "-m", "shipline", "deploy", "--config", "shipline.yml"], cwd=app.path,
                            env=app.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "starting the new container next to the old one" in line:
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.communicate(timeout=120)[0]
    out = "".join(lines) + rest
    assert proc.returncode == 130, out
    assert app.version() == serving
    assert "unlocked" in app.shipline("lock", "status").out
    latest = json.loads(app.shipline("releases", "--json").out)[0]
    assert latest["status"] == "interrupted" and latest["reason"] == "interrupted by SIGTERM"
    assert len(backend_containers(app)) == 1


def test_sigterm_while_building_kills_the_build_beside_the_locked_hosts(traefik_app: AppRepo) -> None:
    """The build runs in a thread of its own while the hosts are locked and given the release's files: a signal
    still stops it at once (a build step that would sleep for 10 minutes), records the release as interrupted,
    frees the lock and pushes nothing."""
    app = traefik_app
    serving = app.version()
    dockerfile = f"{app.sources}backend/Dockerfile"
    original = (app.path / dockerfile).read_text()
    app.edit(dockerfile, "COPY app ./app\n", "COPY app ./app\nRUN sleep 600\n")
    short = app.commit("a build that never ends")
    try:
        proc = subprocess.Popen([sys.executable, "-m", "shipline", "deploy", "--config", "shipline.yml"], cwd=app.path,
                                env=app.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:  # the build has started and the release is recorded on the host: both under way
            lines.append(line)
            if (any(x.rstrip().endswith("build backend ...") for x in lines)
                    and any(f"{app.app} at {short} (" in x for x in lines)):
                proc.send_signal(signal.SIGTERM)
                break
        rest = proc.communicate(timeout=120)[0]  # not 600 s: the build was killed, not waited for
        out = "".join(lines) + rest
        assert proc.returncode == 130, out
        assert app.version() == serving
        assert "unlocked" in app.shipline("lock", "status").out
        latest = json.loads(app.shipline("releases", "--json").out)[0]
        assert latest["short_sha"] == short and latest["status"] == "interrupted", latest
        assert short not in registry_tags("127.0.0.1:5000", f"{app.app}/backend"), "nothing was pushed"
    finally:
        (app.path / dockerfile).write_text(original)
        app.commit("the build ends again")
