"""A release's Docker Swarm stack, rendered from the user's Compose file (docs/swarm.md). Not wired yet.

Every service shipline builds becomes one Swarm service per release (`backend-r12`), keeping its Compose name
as a network alias, so the previous release's tasks keep serving until shipline switches the edge proxies
explicitly, and other services still find it by name. Services shipline does not build (a database, the edge
proxy) keep their names: `docker stack deploy` updates them only when their definition changes. Migrations
are a one-off service of the new image (one replica, never restarted), deployed before the release's services.

`${VAR}` stays in the file: `docker stack deploy` interpolates it from an environment that shipline gives it
from a mode-0600 file (`stack_env`), so no value appears in a command line. Pure: tested without Docker.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from .layout import RELEASE_LABEL

APP_LABEL = "dev.shipline.app"
SERVICE_LABEL = "dev.shipline.service"
STACK_VERSION = "3.8"  # what `docker stack deploy` of Docker 20.10 and later reads
# Keys Swarm ignores (with a warning) or rejects in a stack file; depends_on's long form is an error there.
NOT_FOR_SWARM = ("build", "depends_on", "container_name", "restart", "profiles", "pull_policy")


def versioned(service: str, number: int) -> str:
    return f"{service}-r{number}"


def migration_name(number: int) -> str:
    return f"migrate-r{number}"


def _labels(raw: Any) -> dict[str, str]:
    """Compose's two forms of labels (a mapping, or a list of `key=value`) as a mapping."""
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return dict(str(item).partition("=")[::2] for item in raw)
    return {}


def with_alias(networks: Any, alias: str) -> dict[str, Any]:
    """The service's networks (either Compose form) with `alias` added on each; no networks means `default`."""
    if not networks:
        return {"default": {"aliases": [alias]}}
    if isinstance(networks, list):
        return {str(n): {"aliases": [alias]} for n in networks}
    out: dict[str, Any] = {}
    for name, cfg in networks.items():
        cfg = dict(cfg or {})
        cfg["aliases"] = [*(cfg.get("aliases") or []), alias]
        out[str(name)] = cfg
    return out


def _for_swarm(spec: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    out = {k: copy.deepcopy(v) for k, v in spec.items() if k not in NOT_FOR_SWARM}
    deploy = dict(out.get("deploy") or {})
    deploy["labels"] = {**_labels(deploy.get("labels")), **labels}
    out["deploy"] = deploy
    return out


def _top_level(compose: Mapping[str, Any], services: dict[str, Any]) -> dict[str, Any]:
    stack: dict[str, Any] = {"version": STACK_VERSION, "services": services}
    for key in ("networks", "volumes", "secrets", "configs"):
        if compose.get(key):
            stack[key] = copy.deepcopy(compose[key])
    return stack


def render(compose: Mapping[str, Any], app: str, number: int, images: Mapping[str, str]) -> dict[str, Any]:
    """The stack of release `number`: built services (keys of `images`) versioned, the others as they are."""
    services: dict[str, Any] = {}
    for name, spec in (compose.get("services") or {}).items():
        labels = {APP_LABEL: app, SERVICE_LABEL: str(name)}
        if name in images:
            svc = _for_swarm(spec or {}, {**labels, RELEASE_LABEL: str(number)})
            svc["image"] = images[name]
            svc["networks"] = with_alias(svc.get("networks"), str(name))
            services[versioned(str(name), number)] = svc
        else:
            services[str(name)] = _for_swarm(spec or {}, labels)
    return _top_level(compose, services)


def render_migration(compose: Mapping[str, Any], app: str, number: int, service: str, image: str,
                     command: Sequence[str]) -> dict[str, Any]:
    """A one-off service running `command` in the new image of `service`, with its networks and environment."""
    spec = (compose.get("services") or {})[service] or {}
    job = _for_swarm(spec, {APP_LABEL: app, SERVICE_LABEL: migration_name(number), RELEASE_LABEL: str(number)})
    job.update(image=image, command=list(command), healthcheck={"disable": True})
    job.pop("ports", None)
    job["deploy"] = {"replicas": 1, "restart_policy": {"condition": "none"}, "labels": job["deploy"]["labels"]}
    return _top_level(compose, {migration_name(number): job})


def stack_env(values: Mapping[str, str]) -> str:
    """`export NAME='value'` lines a POSIX shell sources before `docker stack deploy` (uploaded 0600)."""
    return "".join(f"export {k}='" + v.replace("'", "'\\''") + "'\n" for k, v in values.items())
