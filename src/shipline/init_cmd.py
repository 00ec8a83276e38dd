"""`shipline init`: read the project's Compose file, write a starter shipline.yml and a deploy workflow."""

from __future__ import annotations

from pathlib import Path

import yaml

from .config import parse_config
from .errors import ShiplineError
from .init_templates import app_name, github_workflow, starter_config, variables_used

COMPOSE_CANDIDATES = ("docker-compose.prod.yml", "compose.prod.yml", "docker-compose.yml", "compose.yml")


def _services(compose: Path) -> dict[str, str | None]:
    """Service name -> build context (None for services that use a published image)."""
    data = yaml.safe_load(compose.read_text(encoding="utf-8")) or {}
    services: dict[str, str | None] = {}
    for name, spec in (data.get("services") or {}).items():
        build = (spec or {}).get("build")
        services[str(name)] = build if isinstance(build, str) else (build or {}).get("context", ".") if build else None
    return services


def write_starter(directory: Path, *, force: bool = False) -> list[Path]:
    compose = next((directory / c for c in COMPOSE_CANDIDATES if (directory / c).is_file()), None)
    if compose is None:
        raise ShiplineError(f"{directory.resolve()}: no Compose file ({', '.join(COMPOSE_CANDIDATES)}). "
                            "shipline deploys what your production Compose file describes; write that first.")
    config_text = starter_config(app_name(directory.resolve().name), compose.name, _services(compose))
    names = variables_used(config_text)
    config = parse_config(yaml.safe_load(config_text), "shipline.yml", {n: f"placeholder-{n.lower()}" for n in names}
                          | {"SHIPLINE_HOST_KEY": "SHA256:" + "A" * 43, "SHIPLINE_HOST": "deploy@example.invalid",
                             "SHIPLINE_REGISTRY": "registry.example.invalid"})
    outputs = {
        directory / "shipline.yml": config_text,
        directory / ".github" / "workflows" / "deploy.yml": github_workflow(config, names),
    }
    existing = [p for p in outputs if p.exists()]
    if existing and not force:
        raise ShiplineError(f"{', '.join(map(str, existing))} already exist; nothing was written. Use --force to overwrite.")
    for path, text in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    gitignore = directory / ".gitignore"
    lines = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.is_file() else []
    if ".shipline/" not in lines:
        gitignore.write_text("\n".join([*lines, ".shipline/  # release history and secrets: never commit"]) + "\n")
    return list(outputs)
