"""`shipline init` on a project directory: which Compose files, what it infers, what it never overwrites."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from shipline.errors import ShiplineError
from shipline.init_cmd import compose_candidates, gitignore_shipline, write_starter
from shipline.project import load_project

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
BASE = """\
services:
  web:
    build:
      context: ./web
      dockerfile: docker/Dockerfile
      target: ${WEB_TARGET:-runtime}
      args:
        NODE_ENV: production
        API_URL: ${API_URL?set the public API URL}
        COMMIT: $GIT_COMMIT
    environment:
      DATABASE_PASSWORD: ${DB_PASSWORD}
      LOG_LEVEL: ${LOG_LEVEL:-info}
      SENTRY_DSN: ${SENTRY_DSN:?}
    depends_on:
      migrate: {condition: service_completed_successfully}
  migrate:
    build: ./web
    command: ["npm", "run", "migrate"]
  db:
    image: postgres:16
    environment: [POSTGRES_PASSWORD]
  seed:
    build: ./web
    profiles: [seed]
"""
PROD_OVERRIDE = "services:\n  web:\n    ports: ['127.0.0.1:8000:8000']\n"


def project_dir(tmp_path: Path, files: dict[str, str], git: bool = True) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "web" / "docker").mkdir(parents=True, exist_ok=True)
    (tmp_path / "web" / "docker" / "Dockerfile").write_text("FROM node:20\n")
    (tmp_path / "web" / "Dockerfile").write_text("FROM node:20\n")
    if git:
        subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    return tmp_path


@pytest.mark.parametrize(("files", "chosen"), [
    (["compose.yaml"], ["compose.yaml"]),
    (["docker-compose.yml"], ["docker-compose.yml"]),
    (["compose.yml", "compose.override.yml"], ["compose.yml"]),
    (["docker-compose.yml", "docker-compose.prod.yml"], ["docker-compose.prod.yml"]),
    (["compose.yaml", "compose.production.yaml"], ["compose.production.yaml"]),
    (["compose.yaml", "compose.prod.yaml:override"], ["compose.yaml", "compose.prod.yaml"]),
    (["docker-compose.yaml", "docker-compose-prod.yml:override"], ["docker-compose.yaml", "docker-compose-prod.yml"]),
    (["docker-stack.yml"], ["docker-stack.yml"]),
])
def test_finds_the_production_file_among_composes_names(tmp_path: Path, files: list[str], chosen: list[str]) -> None:
    contents = {}
    for item in files:
        name, _, kind = item.partition(":")
        contents[name] = PROD_OVERRIDE if kind == "override" else "services:\n  web: {image: nginx}\n"
    result = write_starter(project_dir(tmp_path, contents))
    config = yaml.safe_load((tmp_path / "shipline.yml").read_text())
    assert (config["compose"] if isinstance(config["compose"], list) else [config["compose"]]) == chosen
    assert any("Compose files: " + ", ".join(chosen) in line for line in result.summary)


def test_several_candidates_ask_or_name_the_flag(tmp_path: Path) -> None:
    files = {"docker-compose.prod.yml": "services:\n  a: {image: x}\n", "docker-compose.production.yml": "services:\n  b: {image: x}\n"}
    root = project_dir(tmp_path, files)
    with pytest.raises(ShiplineError, match="--compose FILE") as info:
        write_starter(root)
    assert "docker-compose.prod.yml, docker-compose.production.yml" in info.value.message
    assert not (root / "shipline.yml").exists()
    asked: list[list[str]] = []

    def ask(question: str, options: list[str]) -> str:
        asked.append(options)
        return options[1]

    write_starter(root, ask=ask)
    assert asked == [["docker-compose.prod.yml", "docker-compose.production.yml"]]
    assert yaml.safe_load((root / "shipline.yml").read_text())["compose"] == "docker-compose.production.yml"


def test_compose_flag_names_base_and_override(tmp_path: Path) -> None:
    root = project_dir(tmp_path, {"deploy/base.yml": "services:\n  web: {image: x}\n", "deploy/live.yml": PROD_OVERRIDE})
    write_starter(root, compose=["deploy/base.yml", "deploy/live.yml"])
    assert yaml.safe_load((root / "shipline.yml").read_text())["compose"] == ["deploy/base.yml", "deploy/live.yml"]
    with pytest.raises(ShiplineError, match=r"nope\.yml: no such file"):
        write_starter(root, compose=["nope.yml"], force=True)


def test_no_compose_file(tmp_path: Path) -> None:
    with pytest.raises(ShiplineError, match="no Compose file"):
        write_starter(tmp_path)


def test_carries_build_fields_and_lists_every_variable(tmp_path: Path) -> None:
    root = project_dir(tmp_path, {"compose.yaml": BASE})
    result = write_starter(root)
    text = (root / "shipline.yml").read_text()
    config = yaml.safe_load(text)
    assert config["build"] == {
        "web": {"context": "web", "dockerfile": "docker/Dockerfile", "target": "runtime",
                "args": {"NODE_ENV": "production", "API_URL": "${API_URL?set the public API URL}", "COMMIT": "${GIT_COMMIT}"}},
        "migrate": {"context": "web"}}  # seed is in a profile that is not deployed
    assert config["secrets"] == ["DB_PASSWORD", "SENTRY_DSN", "POSTGRES_PASSWORD"]
    assert config["env"] == {"API_URL": "${API_URL}", "GIT_COMMIT": "${GIT_COMMIT}"}
    summary = "\n".join(result.summary)
    assert "not deployed (profiles not enabled" in summary and "seed [seed]" in summary
    assert "runs published images: db (postgres:16)" in summary
    assert any("DB_PASSWORD, SENTRY_DSN, POSTGRES_PASSWORD" in t for t in result.todo)


def test_never_overwrites_a_workflow_of_the_project(tmp_path: Path) -> None:
    root = project_dir(tmp_path, {"compose.yaml": "services:\n  web: {image: x}\n"})
    own = root / ".github" / "workflows" / "deploy.yml"
    own.parent.mkdir(parents=True)
    own.write_text("name: our deploy\non: push\njobs: {}\n")
    result = write_starter(root)
    assert own.read_text() == "name: our deploy\non: push\njobs: {}\n"
    beside = root / ".github" / "workflows" / "shipline-deploy.yml"
    assert beside in result.written and beside.read_text().startswith("# Generated by `shipline init`")
    assert any("kept your" in n and "shipline-deploy.yml" in n for n in result.notes)
    result = write_starter(root, force=True)  # --force replaces shipline's files, never the project's
    assert own.read_text() == "name: our deploy\non: push\njobs: {}\n"
    assert beside in result.written


def test_own_workflow_and_config_need_force(tmp_path: Path) -> None:
    root = project_dir(tmp_path, {"compose.yaml": "services:\n  web: {image: x}\n"})
    write_starter(root)
    with pytest.raises(ShiplineError, match=r"shipline\.yml already exists"):
        write_starter(root)
    (root / "shipline.yml").unlink()
    with pytest.raises(ShiplineError, match=r"deploy\.yml \(written by an earlier `shipline init`\) already exists"):
        write_starter(root)
    assert (root / ".github" / "workflows" / "deploy.yml") in write_starter(root, force=True).written


def git_ignores(root: Path, path: str) -> bool:
    return subprocess.run(["git", "-C", str(root), "check-ignore", "-q", path]).returncode == 0


@pytest.mark.parametrize("existing", [None, "node_modules/", "node_modules/\n",
                                      ".shipline/  # release history and secrets: never commit\n"])
def test_gitignore_really_ignores_the_secrets(tmp_path: Path, existing: str | None) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    if existing is not None:
        (tmp_path / ".gitignore").write_text(existing)
    assert gitignore_shipline(tmp_path)
    assert git_ignores(tmp_path, ".shipline/secrets")
    assert not git_ignores(tmp_path, "shipline.yml")
    if existing and existing.startswith("node_modules"):
        assert git_ignores(tmp_path, "node_modules/x")
    assert gitignore_shipline(tmp_path) is None  # once is enough


def test_init_then_plan_without_edits(tmp_path: Path) -> None:
    root = project_dir(tmp_path, {"compose.yaml": BASE})
    write_starter(root)
    key = root / "id_ed25519"
    key.write_text("key\n")
    text = (root / "shipline.yml").read_text().replace("~/.ssh/id_ed25519", str(key))
    (root / "shipline.yml").write_text(text)
    env = {"SHIPLINE_REGISTRY": "127.0.0.1:5000", "SHIPLINE_HOST": "deploy@203.0.113.10", "SHIPLINE_HOST_KEY": HOST_KEY,
           "API_URL": "https://api.example.com", "GIT_COMMIT": "abc"}
    project = load_project(root / "shipline.yml", env)
    assert {n: r.strategy for n, r in project.rollouts.items()} == {"web": "recreate", "migrate": "job", "db": "recreate"}
    assert "web waits for it to complete" in project.rollouts["migrate"].why
    assert project.inactive == {"seed": "profile seed not enabled (deploy.profiles)"}


def test_candidates_skip_other_yaml(tmp_path: Path) -> None:
    for name in ("compose.yaml", "docker-compose.override.yml", "mkdocs.yml", ".gitlab-ci.yml", "compose.test.yml"):
        (tmp_path / name).write_text("x: 1\n")
    assert compose_candidates(tmp_path) == ["compose.test.yml", "compose.yaml"]
