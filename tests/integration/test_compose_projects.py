"""Compose projects as teams write them, deployed for real: a base file with a production override, a
bind-mounted config file, an env_file, a profile that is not deployed, a one-shot job, a data directory
(examples/overrides, with shipline.yml in the example's subdirectory of the repository).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .stack import AppRepo, compose_down, make_example_repo

pytestmark = pytest.mark.integration
HOME = Path("/home/deploy")  # the test "VPS" is this machine's sshd, logged in as `deploy`


@pytest.fixture(scope="module")
def overrides(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppRepo]:
    app = f"ov{uuid.uuid4().hex[:8]}"
    repo = make_example_repo(Path(tmp_path_factory.mktemp("ov")), app, "overrides")
    repo.scheme = "http"
    try:
        yield repo
    finally:
        compose_down(app)


def containers(app: AppRepo, service: str, *, all_states: bool = False) -> list[str]:
    argv = ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={app.app}",
            "--filter", f"label=com.docker.compose.service={service}", *(["--all"] if all_states else [])]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()


def inspect(container: str, fmt: str) -> str:
    return subprocess.run(["docker", "inspect", "--format", fmt, container], capture_output=True, text=True,
                          check=True).stdout.strip()


def release_dir(app: AppRepo, number: int) -> Path:
    return HOME / ".shipline" / app.app / "releases" / str(number)


def test_base_and_production_override_deploy_with_the_files_of_the_commit(overrides: AppRepo) -> None:
    app = overrides
    res = app.shipline("deploy")
    assert res.code == 0, res.out
    assert "migrate completed (exit status 0)" in res.out
    page = app.get("/api/version")
    assert page.status_code == 200 and page.json()["version"] == app.head()
    assert page.headers["X-Served-By"] == "overrides-example", "nginx runs with the committed nginx.conf"
    # compose.prod.yaml's env_file reached the backend; the seed profile was not deployed; the job ran once, exit 0
    env = json.loads(inspect(containers(app, "backend")[0], "{{json .Config.Env}}"))
    assert "GREETING=hello-from-app-env" in env
    assert containers(app, "seed", all_states=True) == []
    job = containers(app, "migrate", all_states=True)
    assert len(job) == 1 and inspect(job[0], "{{.State.Status}} {{.State.ExitCode}}") == "exited 0"
    # the uploaded files are the committed ones, secrets and env files readable by the owner only
    src = release_dir(app, 1) / "src" / "examples" / "overrides"
    for name in ("compose.yaml", "compose.prod.yaml", "nginx.conf", "app.env"):
        assert (src / name).read_bytes() == (app.path / "examples" / "overrides" / name).read_bytes()
    assert (src / "app.env").stat().st_mode & 0o777 == 0o600
    assert (src / "nginx.conf").stat().st_mode & 0o777 == 0o644
    assert (release_dir(app, 1)).stat().st_mode & 0o777 == 0o700


def test_an_uncommitted_change_is_not_deployed_and_data_stays_put(overrides: AppRepo) -> None:
    app = overrides
    logs = HOME / ".shipline" / app.app / "data" / "logs" / "access.log"
    assert logs.is_file() and logs.stat().st_size > 0, "nginx writes its log into the app's data directory"
    served_before = logs.read_bytes()
    nginx_conf = app.path / "examples" / "overrides" / "nginx.conf"
    committed = nginx_conf.read_text()
    nginx_conf.write_text(committed.replace('"overrides-example"', '"uncommitted"'))
    plan = app.shipline("plan")
    assert "working tree differs from commit" in plan.out and "examples/overrides/nginx.conf" in plan.out
    res = app.shipline("deploy")
    assert res.code == 0, res.out
    assert "already live" in res.out, "the commit is what is live: the working tree's change is not a change"
    assert app.get("/").headers["X-Served-By"] == "overrides-example"
    assert not release_dir(app, 2).exists()
    app.commit("nginx: say who serves")
    res = app.shipline("deploy")
    assert res.code == 0, res.out
    assert app.get("/").headers["X-Served-By"] == "uncommitted", "once committed, it is deployed"
    assert (release_dir(app, 2) / "src" / "examples" / "overrides" / "nginx.conf").read_text() != committed
    assert (release_dir(app, 1) / "src" / "examples" / "overrides" / "nginx.conf").read_text() == committed
    assert logs.read_bytes().startswith(served_before), "the log of release 1 is still there"
