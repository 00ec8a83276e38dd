"""Reading the Compose file: services, dependencies in both forms, the default rollout order."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipline.compose import ComposeFileError, load_compose, parse_compose

APP = """\
services:
  proxy:
    image: caddy:2
    depends_on: [frontend, backend]
  db:
    image: postgres:16
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U app"]
  backend:
    build: ./backend
    depends_on:
      db:
        condition: service_healthy
  frontend:
    build: ./frontend
    depends_on: [backend]
"""


def test_services_in_file_order() -> None:
    project = parse_compose(APP)
    assert list(project.services) == ["proxy", "db", "backend", "frontend"]


def test_depends_on_list_and_mapping_forms() -> None:
    services = parse_compose(APP).services
    assert services["proxy"].depends_on == ("frontend", "backend")  # list form
    assert services["backend"].depends_on == ("db",)  # mapping form, with conditions
    assert services["db"].depends_on == ()


def test_default_order_puts_dependencies_first() -> None:
    assert parse_compose(APP).default_order() == ["db", "backend", "frontend", "proxy"]


def test_default_order_keeps_file_order_when_independent() -> None:
    project = parse_compose("services:\n  c: {image: x}\n  a: {image: x}\n  b: {image: x}\n")
    assert project.default_order() == ["c", "a", "b"]


def test_default_order_mapping_form_only() -> None:
    text = """\
services:
  web:
    image: x
    depends_on:
      api: {condition: service_healthy}
      cache: {condition: service_started}
  api:
    image: x
    depends_on:
      db: {condition: service_healthy}
  cache: {image: redis}
  db: {image: postgres}
"""
    assert parse_compose(text).default_order() == ["db", "api", "cache", "web"]


def test_dependency_outside_the_file_is_ignored() -> None:
    project = parse_compose("services:\n  web:\n    image: x\n    depends_on: [external]\n")
    assert project.default_order() == ["web"]


@pytest.mark.parametrize(
    "text",
    [
        "services:\n  a: {depends_on: [b]}\n  b: {depends_on: [a]}\n",
        "services:\n  a: {depends_on: {b: {condition: service_started}}}\n  b: {depends_on: [c]}\n  c: {depends_on: [a]}\n",
        "services:\n  a: {depends_on: [a]}\n",
    ],
    ids=["two", "three-mixed-forms", "self"],
)
def test_cycle_is_an_error(text: str) -> None:
    with pytest.raises(ComposeFileError, match="depends_on cycle"):
        parse_compose(text).default_order()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("services:\n  a:\n    image: x\n   b: [\n", "not valid YAML"),
        ("version: '3.8'\n", "no `services:` mapping"),
        ("services: {}\n", "no `services:` mapping"),
        ("- a\n", "no `services:` mapping"),
        ("", "no `services:` mapping"),
    ],
)
def test_unusable_files(text: str, match: str) -> None:
    with pytest.raises(ComposeFileError, match=match):
        parse_compose(text)


def test_service_without_body() -> None:
    project = parse_compose("services:\n  web:\n")
    assert project.services["web"].depends_on == ()
    assert project.default_order() == ["web"]


def test_load_compose_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "docker-compose.prod.yml"
    path.write_text(APP)
    assert load_compose(path).default_order() == ["db", "backend", "frontend", "proxy"]
