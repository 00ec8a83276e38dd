"""shipline.yml loading: a valid project loads with the right values; every broken one says file, key and fix."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipline.config import parse_config
from shipline.errors import ConfigError, ExitCode
from shipline.project import Project, load_project

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
ENV = {"SHIPLINE_HOST_KEY": HOST_KEY}

COMPOSE = """\
services:
  proxy:
    image: caddy:2
    depends_on: [frontend, backend]
  db:
    image: postgres:16
    healthcheck:
      test: ["CMD", "pg_isready"]
  backend:
    build: ./backend
    depends_on:
      db:
        condition: service_healthy
  frontend:
    build: ./frontend
    depends_on: [backend]
"""


def valid_config() -> dict[str, Any]:
    return {
        "app": "myshop",
        "compose": "docker-compose.prod.yml",
        "registry": {"url": "127.0.0.1:5000", "username": "ci", "password_secret": "REGISTRY_PASSWORD"},
        "build": {
            "backend": {"context": "backend", "args": {"GIT_SHA": "{sha}", "PORT": 8000}},
            "frontend": {"context": "frontend", "image": "acme/web", "args": {"VERSION": "{short_sha}"}},
        },
        "test": [
            {"name": "unit", "service": "backend", "run": "pytest -q"},
            {"name": "lint", "image": "python:3.12-slim", "run": ["ruff", "check", "."]},
        ],
        "hosts": [
            {"address": "deploy@203.0.113.10:2222", "ssh_key": "keys/deploy_ed25519", "host_key": "${SHIPLINE_HOST_KEY}"}
        ],
        "deploy": {"health_timeout": 90, "services": {"backend": {"health_timeout": 120}}},
        "secrets": ["DB_PASSWORD"],
    }


def write_project(root: Path, config: dict[str, Any] | None = None) -> Path:
    (root / "backend").mkdir()
    (root / "backend" / "Dockerfile").write_text("FROM python:3.12-slim\n")
    (root / "frontend").mkdir()
    (root / "frontend" / "Dockerfile").write_text("FROM node:20-alpine\n")
    (root / "keys").mkdir()
    (root / "keys" / "deploy_ed25519").write_text("not a real key\n")
    (root / "docker-compose.prod.yml").write_text(COMPOSE)
    path = root / "shipline.yml"
    path.write_text(yaml.safe_dump(config or valid_config(), sort_keys=False))
    return path


def assert_one_paragraph_each(err: ConfigError) -> None:
    assert err.problems
    assert err.message == "\n\n".join(err.problems)
    for problem in err.problems:
        assert "\n" not in problem, problem
        assert "Traceback" not in problem
        assert "pydantic" not in problem.lower()
        assert not problem.endswith(".."), problem


# --- the valid project ------------------------------------------------------------------------


def test_valid_project_loads(tmp_path: Path) -> None:
    project = load_project(write_project(tmp_path), ENV)

    assert isinstance(project, Project)
    config = project.config
    assert project.root == tmp_path.resolve()
    assert config.app == "myshop"
    assert config.branch == "main"
    assert config.image_name("backend") == "127.0.0.1:5000/myshop/backend"
    assert config.image_name("frontend") == "127.0.0.1:5000/acme/web"
    assert project.rollout_order() == ["db", "backend", "frontend", "proxy"]
    assert config.health_timeout("backend") == 120
    assert config.health_timeout("frontend") == 90
    assert config.build["backend"].args == {"GIT_SHA": "{sha}", "PORT": "8000"}
    assert config.build["frontend"].args == {"VERSION": "{short_sha}"}
    assert config.hosts[0].host_key == HOST_KEY
    assert (config.hosts[0].user, config.hosts[0].hostname, config.hosts[0].port) == ("deploy", "203.0.113.10", 2222)
    assert config.test[0].service == "backend"
    assert config.test[1].run == ["ruff", "check", "."]
    assert config.deploy.keep_releases == 5
    assert config.secrets == ["DB_PASSWORD"]
    assert sorted(project.compose.services) == ["backend", "db", "frontend", "proxy"]


def test_explicit_order_wins_over_depends_on(tmp_path: Path) -> None:
    config = valid_config()
    config["deploy"]["order"] = ["db", "frontend", "backend", "proxy"]
    project = load_project(write_project(tmp_path, config), ENV)
    assert project.rollout_order() == ["db", "frontend", "backend", "proxy"]


def test_interpolation_default_and_host_key_comment(tmp_path: Path) -> None:
    config = valid_config()
    config["hosts"][0]["host_key"] = "${SHIPLINE_HOST_KEY:-" + HOST_KEY + " deploy@laptop}"
    project = load_project(write_project(tmp_path, config), {})
    assert project.config.hosts[0].host_key == HOST_KEY  # the known_hosts comment is dropped


def test_host_key_may_be_left_out(tmp_path: Path) -> None:
    # Unpinned hosts load; the first connection is refused and shows the key to pin.
    config = valid_config()
    del config["hosts"][0]["host_key"]
    project = load_project(write_project(tmp_path, config), {})
    assert project.config.hosts[0].host_key is None


def test_placeholders_are_kept_for_build_time(tmp_path: Path) -> None:
    config = valid_config()
    config["build"]["backend"]["args"] = {"A": "{sha}", "B": "{short_sha}", "C": "{ref}", "D": "{app}-x"}
    project = load_project(write_project(tmp_path, config), ENV)
    assert project.config.build["backend"].args == {"A": "{sha}", "B": "{short_sha}", "C": "{ref}", "D": "{app}-x"}


# --- broken variants --------------------------------------------------------------------------

NO_FILE = "\0"  # a change that returns this leaves no shipline.yml at all


@dataclass(frozen=True)
class Broken:
    id: str
    change: Callable[[dict[str, Any], Path], str | None]  # returns raw text to write instead of the dict
    expect: tuple[str, ...]  # all found in one problem, besides the file's path
    env: dict[str, str] | None = None
    file: str | None = None  # the file the problem names, when it is not shipline.yml


def _node(config: dict[str, Any], parents: list[str]) -> Any:
    node: Any = config
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    return node


def _set(path: str, value: Any) -> Callable[[dict[str, Any], Path], None]:
    def change(config: dict[str, Any], root: Path) -> None:
        *parents, last = path.split(".")
        _node(config, parents)[int(last) if last.isdigit() else last] = value

    return change


def _pop(path: str) -> Callable[[dict[str, Any], Path], None]:
    def change(config: dict[str, Any], root: Path) -> None:
        *parents, last = path.split(".")
        del _node(config, parents)[last]

    return change


def _write(rel: str, text: str) -> Callable[[dict[str, Any], Path], None]:
    def change(config: dict[str, Any], root: Path) -> None:
        (root / rel).write_text(text)

    return change


def _remove(rel: str) -> Callable[[dict[str, Any], Path], None]:
    def change(config: dict[str, Any], root: Path) -> None:
        (root / rel).unlink()

    return change


# 6 levels of 10 aliases each: 300 bytes that stand for 10^6 strings once expanded (each level multiplies by 10).
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, n in zip("abcde", "bcdef", strict=True)) + "app: shop\nenv: {BOMB: *f}\n"

BROKEN = [
    Broken("bad-address", _set("hosts.0.address", "deploy at example.com"),
           ("hosts[0].address:", "not an SSH address", "'deploy at example.com'", "user@host")),
    Broken("bad-host-key", _set("hosts.0.host_key", "AAAAC3Nza"),
           ("hosts[0].host_key:", "not an SSH host key", "shipline keyscan")),
    Broken("host-key-cut-short", _set("hosts.0.host_key", "ssh-ed25519 AAAA"),
           ("hosts[0].host_key:", "not an SSH host key", "cut short or damaged", "shipline keyscan")),
    Broken("host-key-list-with-a-bad-pin", _set("hosts.0.host_key", [HOST_KEY, "ssh-rsa AAAAB3Nza"]),
           ("hosts[0].host_key:", "(pin 2 of 2)", "shipline keyscan")),
    Broken("build-context-missing", _set("build.backend.context", "api"),
           ("build.backend.context:", "does not exist", "relative to")),
    Broken("build-context-outside-repo", _set("build.backend.context", ".."),
           ("build.backend.context:", "'..'", "outside the repository", "inside the repository")),
    Broken("build-context-absolute", _set("build.backend.context", "/etc"),
           ("build.backend.context:", "'/etc'", "outside the repository")),
    Broken("dockerfile-outside-repo", _set("build.frontend.dockerfile", "../../Dockerfile"),
           ("build.frontend.dockerfile:", "'../../Dockerfile'", "outside the repository")),
    Broken("deploy-path-absolute", _set("deploy.path", "/srv/apps"),
           ("deploy.path:", "'/srv/apps'", "inside the SSH user's home", "relative to the SSH user's home")),
    Broken("deploy-path-parent", _set("deploy.path", "apps/../../other"),
           ("deploy.path:", "without `..`")),
    Broken("dockerfile-missing", _set("build.frontend.dockerfile", "Dockerfile.prod"),
           ("build.frontend.dockerfile:", "Dockerfile.prod", "does not exist")),
    Broken("registry-url-with-scheme", _set("registry.url", "https://ghcr.io/acme"),
           ("registry.url:", "'https://ghcr.io/acme'", "host[:port][/namespace]")),
    Broken("registry-half-credentials", _pop("registry.password_secret"),
           ("registry:", "give both `username` and `password_secret`")),
    Broken("missing-registry", _pop("registry"), ("registry:", "is required", "url: ghcr.io/myorg")),
    Broken("keep-releases-zero", _set("deploy.keep_releases", 0),
           ("deploy.keep_releases:", "greater than or equal to 1", "1 to 100")),
    Broken("keep-releases-not-a-number", _set("deploy.keep_releases", "many"),
           ("deploy.keep_releases:", "valid integer", "'many'", "whole number")),
    Broken("unknown-key-typo", _set("buidl", {"x": {}}), ("buidl:", "unknown key", "Did you mean `build`?")),
    Broken("unknown-nested-key", _set("build.backend.contxt", "backend"),
           ("build.backend.contxt:", "unknown key", "Did you mean `context`?")),
    Broken("unknown-host-key-name", _set("hosts.0.hostkey", HOST_KEY),
           ("hosts[0].hostkey:", "unknown key", "Did you mean `host_key`?")),
    Broken("test-service-and-image", _set("test.0.image", "python:3.12"),
           ("test[0]:", "exactly one of `service`", "`image`")),
    Broken("test-neither-service-nor-image", _pop("test.0.service"),
           ("test[0]:", "exactly one of `service`")),
    Broken("test-run-wrong-type", _set("test.1.run", {"cmd": "pytest"}),
           ("test[1].run:", "not a command", "string")),
    Broken("test-unknown-service", _set("test.0.service", "worker"),
           ("test[0].service:", "'worker'", "backend, frontend")),
    Broken("test-duplicate-name", _set("test.1.name", "unit"), ("test:", "'unit'", "own name")),
    Broken("test-bad-name", _set("test.1.name", "Lint Step"), ("test[1].name:", "'Lint Step'", "lower case")),
    Broken("missing-variable", lambda c, r: None,
           ("hosts[0].host_key:", "${SHIPLINE_HOST_KEY}", "SHIPLINE_HOST_KEY is not set", ":-value"), env={}),
    Broken("yaml-syntax-error", lambda c, r: "app: myshop\nregistry:\n  url: ghcr.io/acme\n hosts: [\n",
           ("not valid YAML at line 4", "indentation")),
    Broken("yaml-alias-bomb", lambda c, r: ALIAS_BOMB,
           ("more than 100,000 values", "aliases", "Write those values out")),
    Broken("yaml-not-a-mapping", lambda c, r: "- app: myshop\n", ("must be a YAML mapping", "a YAML list")),
    Broken("empty-file", lambda c, r: "", ("must be a YAML mapping", "it is empty", "shipline init")),
    Broken("build-not-in-compose", _set("build.worker", {"context": "backend"}),
           ("build.worker:", "no service 'worker'", "backend, db, frontend, proxy")),
    Broken("order-unknown-service", _set("deploy.order", ["db", "backend", "frontend", "web"]),
           ("deploy.order[3]:", "no service 'web'")),
    Broken("order-misses-built-service", _set("deploy.order", ["db", "backend"]),
           ("deploy.order:", "frontend", "never be deployed")),
    Broken("deploy-services-unknown", _set("deploy.services.worker", {"health_timeout": 5}),
           ("deploy.services.worker:", "no service 'worker'")),
    Broken("health-timeout-negative", _set("deploy.services.backend.health_timeout", -1),
           ("deploy.services.backend.health_timeout:", "greater than 0", "seconds")),
    Broken("migrate-service-not-built", _set("deploy.migrate", {"service": "db", "command": "migrate"}),
           ("deploy.migrate.service:", "'db'", "backend, frontend")),
    Broken("ssh-key-missing", _set("hosts.0.ssh_key", "keys/nope"),
           ("hosts[0].ssh_key:", "keys/nope", "does not exist", "deploy@203.0.113.10:2222")),
    Broken("no-hosts", _set("hosts", []), ("hosts:", "at least 1", "List at least one server")),
    Broken("bad-placeholder", _set("build.backend.args", {"V": "{commit}"}),
           ("build.backend.args:", "{commit}", "{short_sha}")),
    Broken("bad-build-secret-name", _set("build.backend.secrets", ["npm-token"]),
           ("build.backend.secrets[0]:", "'npm-token'", "like an environment variable")),
    Broken("bad-secret-name", _set("secrets", ["db-password"]),
           ("secrets[0]:", "'db-password'", "like an environment variable")),
    Broken("bad-app-name", _set("app", "My Shop"), ("app:", "'My Shop'", "lower case")),
    Broken("compose-file-missing", _remove("docker-compose.prod.yml"),
           ("compose:", "does not exist", "production Compose file")),
    Broken("compose-file-broken", _write("docker-compose.prod.yml", "version: '3'\n"),
           ("services:", "no `services:` mapping"), file="docker-compose.prod.yml"),
    Broken("compose-file-bad-yaml", _write(
        "docker-compose.prod.yml", "services:\n  backend:\n    image: x\n   frontend: [\n"),
           ("not valid YAML at line 4", "Fix the file"), file="docker-compose.prod.yml"),
    Broken("compose-cycle", _write(
        "docker-compose.prod.yml", "services:\n  a: {depends_on: [b]}\n  b: {depends_on: [a]}\n  backend: {}\n  frontend: {}\n"),
           ("deploy.order:", "cycle", "give the order explicitly")),
    Broken("file-not-found", lambda c, r: NO_FILE, ("no such file", "shipline init")),
]


@pytest.mark.parametrize("case", BROKEN, ids=[b.id for b in BROKEN])
def test_broken_config_names_file_key_and_fix(tmp_path: Path, case: Broken) -> None:
    config = valid_config()
    path = write_project(tmp_path, config)
    text = case.change(config, tmp_path)
    if text == NO_FILE:
        path.unlink()
    else:
        path.write_text(text if text is not None else yaml.safe_dump(config, sort_keys=False))

    with pytest.raises(ConfigError) as info:
        load_project(path, ENV if case.env is None else case.env)

    err = info.value
    assert err.exit_code == ExitCode.CONFIG
    assert_one_paragraph_each(err)
    matching = [p for p in err.problems if all(e in p for e in case.expect)]
    assert matching, f"no problem contains all of {case.expect}:\n{err.message}"
    assert matching[0].startswith(f"{case.file or path}: ")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    config = valid_config()
    config["registry"]["url"] = "https://ghcr.io/acme"
    config["deploy"]["keep_releases"] = "many"
    config["hosts"][0]["address"] = "not an address"
    with pytest.raises(ConfigError) as info:
        load_project(write_project(tmp_path, config), ENV)
    assert [p.split(": ")[1] for p in info.value.problems] == [
        "registry.url", "hosts[0].address", "deploy.keep_releases"
    ]


def test_cross_checks_are_all_reported(tmp_path: Path) -> None:
    config = valid_config()
    config["build"]["backend"]["context"] = "api"
    config["test"][0]["service"] = "worker"
    config["hosts"][0]["ssh_key"] = "keys/nope"
    with pytest.raises(ConfigError) as info:
        load_project(write_project(tmp_path, config), ENV)
    assert [p.split(": ")[1] for p in info.value.problems] == [
        "build.backend.context", "test[0].service", "hosts[0].ssh_key"
    ]


def test_ssh_key_under_home_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("key\n")
    monkeypatch.setenv("HOME", str(home))
    config = valid_config()
    config["hosts"][0]["ssh_key"] = "~/.ssh/id_ed25519"
    project_dir = tmp_path / "app"
    project_dir.mkdir()
    project = load_project(write_project(project_dir, config), ENV)
    assert os.path.expanduser(project.config.hosts[0].ssh_key or "") == str(home / ".ssh" / "id_ed25519")


# --- parse_config on its own --------------------------------------------------------------------

MINIMAL: dict[str, Any] = {
    "app": "myshop",
    "registry": {"url": "ghcr.io/acme"},
    "hosts": [{"address": "deploy@example.com", "host_key": "SHA256:" + "A" * 43}],
}


def test_parse_config_defaults() -> None:
    config = parse_config(MINIMAL, "shipline.yml", {})
    assert config.compose == "docker-compose.prod.yml"
    assert config.sha_length == 7
    assert config.deploy.path == ".shipline"
    assert config.deploy.health_timeout == 60
    assert config.secrets_file == ".shipline/secrets"
    assert (config.hosts[0].user, config.hosts[0].port) == ("deploy", 22)


def test_numbers_become_strings_as_in_compose() -> None:
    config = parse_config({**MINIMAL, "env": {"PORT": 8000, "RATIO": 0.5}}, "shipline.yml", {})
    assert config.env == {"PORT": "8000", "RATIO": "0.5"}


def test_wrong_command_type_is_one_problem() -> None:
    data = {**MINIMAL, "test": [{"name": "unit", "image": "python:3.12", "run": 5}]}
    with pytest.raises(ConfigError) as info:
        parse_config(data, "shipline.yml", {})
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("shipline.yml: test[0].run: not a command (got 5).")


def test_pattern_errors_do_not_show_the_regex() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**MINIMAL, "registry": {"url": "https://ghcr.io/acme"}}, "shipline.yml", {})
    assert "^" not in info.value.message
    assert "should match pattern" not in info.value.message
