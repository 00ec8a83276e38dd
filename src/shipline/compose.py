"""What shipline reads from the user's Compose file: services, their dependencies, the rollout order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class ComposeFileError(Exception):
    """The Compose file cannot be read; the config loader turns this into a ConfigError."""


@dataclass(frozen=True)
class ComposeService:
    name: str
    depends_on: tuple[str, ...]


@dataclass(frozen=True)
class ComposeProject:
    services: dict[str, ComposeService]

    def default_order(self) -> list[str]:
        """Dependencies first; services with no ordering between them keep their file order."""
        order: list[str] = []
        visiting: set[str] = set()

        def visit(name: str) -> None:
            if name in order:
                return
            if name in visiting:
                raise ComposeFileError(f"services form a depends_on cycle through {name!r}")
            visiting.add(name)
            for dep in self.services[name].depends_on:
                if dep in self.services:
                    visit(dep)
            visiting.discard(name)
            order.append(name)

        for name in self.services:
            visit(name)
        return order


def _depends_on(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, list):
        return tuple(str(x) for x in raw)
    if isinstance(raw, dict):
        return tuple(str(x) for x in raw)
    return ()


def parse_compose(text: str) -> ComposeProject:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ComposeFileError(f"not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict) or not data["services"]:
        raise ComposeFileError("it has no `services:` mapping")
    services: dict[str, ComposeService] = {}
    for name, spec in data["services"].items():
        spec = spec if isinstance(spec, dict) else {}
        services[str(name)] = ComposeService(name=str(name), depends_on=_depends_on(spec.get("depends_on")))
    return ComposeProject(services)


def load_compose(path: Path) -> ComposeProject:
    return parse_compose(path.read_text(encoding="utf-8"))
