"""Traefik configured the usual way in a Compose file: the docker provider, and routes as container labels.

Detection only reads the Compose model. Labels map one to one onto Traefik's dynamic configuration
(`traefik.http.routers.api.rule=...` is `http.routers.api.rule`), which is what lets shipline move a
service's routes into its own file-provider files and switch them explicitly during a rollout.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from .compose import ComposeProject, ComposeService

_IMAGE = re.compile(r"(^|/)traefik(:|@|$)")


@dataclass(frozen=True)
class TraefikSetup:
    service: str
    flags: dict[str, str]  # lower-cased flag name (without `--`) -> value ("true" for a bare flag)
    command: tuple[str, ...]  # as written, one argument per item
    labelled: tuple[str, ...]  # services that route with traefik labels

    @property
    def docker_provider(self) -> bool:
        return _true(self.flags.get("providers.docker"))

    @property
    def file_provider(self) -> bool:
        return any(k.startswith("providers.file.") for k in self.flags)

    @property
    def exposed_by_default(self) -> bool:
        return self.flags.get("providers.docker.exposedbydefault", "true").lower() != "false"

    @property
    def configured_by_flags(self) -> bool:
        """Traefik reads flags *or* a static file (never both): shipline can only add flags to the first."""
        return bool(self.command)


def _true(value: str | None) -> bool:
    return value is not None and value.lower() in ("", "true")


def _flags(command: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for arg in command:
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            out[name.lower()] = value if eq else "true"
    return out


def routes_with_labels(svc: ComposeService) -> bool:
    return any(k.lower().startswith(("traefik.http.", "traefik.tcp.")) for k in svc.labels) or \
        (svc.labels.get("traefik.enable") or "").lower() == "true"


def find_traefik(compose: ComposeProject, active: list[str] | None = None) -> TraefikSetup | None:
    """The Traefik service, its flags, and the services routed by its docker provider's labels."""
    names = active if active is not None else list(compose.services)
    for name in names:
        svc = compose.services[name]
        if not svc.image or not _IMAGE.search(svc.image):
            continue
        raw = svc.command
        command = tuple(shlex.split(raw) if isinstance(raw, str) else raw or ())
        command = command[1:] if command and not command[0].startswith("-") and command[0].endswith("traefik") else command
        flags = _flags(command)
        labelled = tuple(n for n in names if n != name and routes_with_labels(compose.services[n]))
        return TraefikSetup(name, flags, command, labelled)
    return None
