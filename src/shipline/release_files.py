"""What one release puts on a host, rendered in one place: Compose file, image override, env file, metadata.

The env file carries the secrets: it is uploaded with mode 0600 into a 0700 release directory, recorded only
by its digest, and never printed (`FileBlob`'s repr shows its size, not its bytes).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

from .layout import COMPOSE_FILE, ENV_FILE, OVERRIDE_FILE, RELEASE_FILE, RELEASE_LABEL
from .plan import DeployPlan, HostTarget, ServiceRollout


@dataclass(frozen=True)
class FileBlob:
    data: bytes = field(repr=False)
    mode: int = 0o644

    def __repr__(self) -> str:
        return f"FileBlob({len(self.data)} bytes, mode {self.mode:o})"

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class ReleaseFiles:
    """The files of release `number` as uploaded to `releases/<number>/` on a host."""

    number: int
    images: dict[str, str]
    files: dict[str, FileBlob]

    def digests(self) -> dict[str, str]:
        return {name: blob.digest for name, blob in sorted(self.files.items())}


def override_file(images: Mapping[str, str], rollout: tuple[ServiceRollout, ...], number: int) -> str:
    """Compose override: built services run their release image; containers started beside others carry the
    release number as a label, so a later deploy can tell a leftover of an interrupted one from what serves.
    """
    services: dict[str, dict[str, object]] = {svc: {"image": ref} for svc, ref in images.items()}
    for step in rollout:
        if step.side_by_side:
            services.setdefault(step.service, {})["labels"] = {RELEASE_LABEL: str(number)}
    return yaml.safe_dump({"services": services}, sort_keys=False)


def env_file(app: str, proxy_dir: str, env: Mapping[str, str], secrets: Mapping[str, str]) -> str:
    """The release's env file, read by `docker compose --env-file` for interpolation."""
    values = {"COMPOSE_PROJECT_NAME": app, "SHIPLINE_PROXY_DIR": proxy_dir} | dict(env) | dict(secrets)
    return "".join(f"{k}={quote(v)}\n" for k, v in values.items())


def quote(value: str) -> str:
    """A value as Compose's env-file parser reads it back unchanged (checked against Compose 2.26).

    Single quotes are not safe for every value (a trailing backslash, or `\\'`, ends them wrongly), so anything
    beyond plain characters goes in double quotes with `\\`, `"` and newlines escaped and `$` doubled.
    """
    if re.fullmatch(r"[A-Za-z0-9_./:@+,-]*", value):
        return value
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
               .replace("$", "$$"))
    return f'"{escaped}"'


def render(plan: DeployPlan, target: HostTarget, number: int, images: Mapping[str, str], compose: bytes,
           secrets: Mapping[str, str], meta: Mapping[str, object], home: str) -> ReleaseFiles:
    """Every file of a release for one host (`home` is the SSH user's home there)."""
    env = env_file(plan.app, f"{home}/{target.layout.proxy_dir}", plan.env, secrets)
    files = {
        COMPOSE_FILE: FileBlob(compose),
        ENV_FILE: FileBlob(env.encode(), 0o600),
        **own_files(number, images, meta, target.rollout),
    }
    return ReleaseFiles(number, dict(images), files)


def own_files(number: int, images: Mapping[str, str], meta: Mapping[str, object],
              rollout: tuple[ServiceRollout, ...]) -> dict[str, FileBlob]:
    """The files shipline derives for a release number (a rollback renders them anew over an earlier release's)."""
    return {
        OVERRIDE_FILE: FileBlob(override_file(images, rollout, number).encode()),
        RELEASE_FILE: FileBlob(json.dumps({**meta, "number": number, "images": dict(images)}, indent=2).encode()),
    }
