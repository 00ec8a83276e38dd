"""What a release takes from the commit (files Compose reads or mounts) and which mounts are data."""

from __future__ import annotations

from shipline.compose import ReleaseInputs, load_project, release_inputs

from .trees import MemoryTree

COMPOSE = """\
services:
  web:
    image: nginx
    env_file: [.env.web, {path: .env.local, required: false}]
    volumes:
      - ./nginx.conf:/etc/nginx/nginx.conf:ro
      - ./site:/usr/share/nginx/html
      - ./uploads:/uploads
      - ./pgdata:/pgdata
      - /var/log:/host-log
      - cache:/cache
    secrets: [api_key]
    configs: [{source: app_config, target: /etc/app.toml}]
  seed:
    image: x
    profiles: [seed]
    volumes: [./seed.sql:/seed.sql]
secrets:
  api_key: {file: ./secrets/api_key.txt}
  unused: {file: ./nope.txt}
configs:
  app_config: {file: ./config/app.toml}
volumes: {cache: {}}
"""
FILES = {
    "compose.yaml": COMPOSE, ".env": "TAG=1\n", ".env.web": "A=1\n", "nginx.conf": "events {}\n",
    "site/index.html": "<h1>", "site/js/app.js": "x", "site/run.sh": "#!/bin/sh\n", "pgdata/.gitkeep": "",
    "secrets/api_key.txt": "k", "config/app.toml": "a = 1\n",
}


def inputs(files: dict[str, str | bytes], compose: list[str] | None = None, profiles: tuple[str, ...] = ()) -> ReleaseInputs:
    tree = MemoryTree(files, executable={"site/run.sh"})
    project = load_project(compose or ["compose.yaml"], tree)
    assert not project.problems, project.problems
    return release_inputs(project, tree, project.active(profiles))


def test_files_of_the_commit_are_uploaded_with_modes() -> None:
    result = inputs(FILES)
    assert not result.problems
    assert {f.path: f.mode for f in result.files} == {
        "compose.yaml": 0o644, ".env": 0o600, ".env.web": 0o600, "nginx.conf": 0o644, "site/index.html": 0o644,
        "site/js/app.js": 0o644, "site/run.sh": 0o755, "secrets/api_key.txt": 0o600, "config/app.toml": 0o644}
    assert dict((f.path, f.keys) for f in result.files)["nginx.conf"] == ("services.web.volumes[0]",)


def test_mounts_not_in_the_commit_are_data() -> None:
    data = inputs(FILES).data_dirs
    assert [(d.service, d.index, d.key, d.path) for d in data] == [
        ("web", 2, "services.web.volumes[2]", "uploads"),
        ("web", 3, "services.web.volumes[3]", "pgdata")]  # only a .gitkeep: a placeholder for data


def test_inactive_services_need_nothing() -> None:
    assert "seed.sql" not in {f.path for f in inputs(FILES).files}
    result = inputs({**FILES, "seed.sql": "insert"}, profiles=("seed",))
    assert "seed.sql" in {f.path for f in result.files}


def test_missing_files_are_problems_naming_the_key() -> None:
    files = {k: v for k, v in FILES.items() if k not in (".env.web", "secrets/api_key.txt", "config/app.toml")}
    problems = [str(p) for p in inputs(files).problems]
    assert len(problems) == 3
    assert problems[0].startswith("compose.yaml: services.web.env_file[0]: .env.web is not in commit 0123456.")
    assert "required: false" in problems[0]
    assert problems[1].startswith("compose.yaml: secrets.api_key.file: ./secrets/api_key.txt is not in commit 0123456.")
    assert "environment: NAME" in problems[1]
    assert problems[2].startswith("compose.yaml: configs.app_config.file:")


def test_paths_outside_the_repository_are_refused() -> None:
    text = "services:\n  web:\n    image: x\n    volumes: ['../../secrets:/s']\n    env_file: ../../.env\n"
    tree = MemoryTree({"app/compose.yaml": text})
    project = load_project(["app/compose.yaml"], tree)
    problems = [str(p) for p in release_inputs(project, tree, project.active()).problems]
    assert any("services.web.volumes[0]: ../../secrets is outside the repository" in p for p in problems), problems
    assert any("services.web.env_file[0]: ../../.env is outside the repository" in p for p in problems), problems


def test_paths_are_relative_to_the_first_files_directory() -> None:
    files = {"deploy/compose.yaml": "services:\n  web: {image: x, volumes: ['./conf:/conf', '../shared/a.conf:/a']}\n",
             "deploy/compose.prod.yaml": "services:\n  web: {volumes: ['./prod.conf:/p']}\n",
             "deploy/conf/x.conf": "x", "deploy/prod.conf": "p", "shared/a.conf": "a"}
    result = inputs(files, ["deploy/compose.yaml", "deploy/compose.prod.yaml"])
    assert [f.path for f in result.files] == ["deploy/compose.prod.yaml", "deploy/compose.yaml", "deploy/conf/x.conf",
                                              "deploy/prod.conf", "shared/a.conf"]


def test_undefined_secret_is_a_problem() -> None:
    tree = MemoryTree({"compose.yaml": "services:\n  web: {image: x, secrets: [db_password]}\n"})
    project = load_project(["compose.yaml"], tree)
    problems = [str(p) for p in release_inputs(project, tree, ["web"]).problems]
    assert problems == ["compose.yaml: services.web.secrets: 'db_password' is not defined under top-level `secrets:`. "
                        "Define it, e.g. `secrets: {db_password: {file: ./db_password.txt}}`."]


def test_a_file_that_is_also_a_secret_stays_private() -> None:
    text = "services:\n  web: {image: x, volumes: ['./key.pem:/key.pem'], secrets: [key]}\nsecrets: {key: {file: ./key.pem}}\n"
    result = inputs({"compose.yaml": text, "key.pem": "k"})
    assert {f.path: f.mode for f in result.files}["key.pem"] == 0o600
