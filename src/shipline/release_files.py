"""What one release puts on a host, rendered in one place: the files it takes from the commit (the Compose
files and every file they reference, at their repository paths under `src/`), how Compose is called for it,
the image override, the env file, metadata.

The env file carries the secrets: it is uploaded with mode 0600 into a 0700 release directory, recorded only
by its digest, and never printed (`FileBlob`'s repr shows its size, not its bytes). Files of the commit that
are secrets or env files keep mode 0600 too.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from .layout import COMPOSE_CALL, ENV_FILE, OVERRIDE_FILE, RELEASE_FILE, RELEASE_LABEL, SOURCE_DIR
from .plan import DeployPlan, HostTarget, ServiceRollout
from .traefik_labels import LabelRouting


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


def override_file(images: Mapping[str, str], rollout: tuple[ServiceRollout, ...], number: int,
                  data: Sequence[tuple[str, Any]] = (), labels: LabelRouting | None = None) -> str:
    """Compose override: built services run their release image; containers started beside others carry the
    release number as a label, so a later deploy can tell a leftover of an interrupted one from what serves;
    `data` volumes (service, entry) point mounts at the app's `data/` directory; with `labels`, Traefik reads
    the routes shipline took over from its files, and the docker provider leaves those containers alone.
    """
    services: dict[str, dict[str, Any]] = {svc: {"image": ref} for svc, ref in images.items()}
    for step in rollout:
        if step.side_by_side:
            services.setdefault(step.service, {}).setdefault("labels", {})[RELEASE_LABEL] = str(number)
    for svc, entry in data:
        services.setdefault(svc, {}).setdefault("volumes", []).append(entry)
    for svc, extra in (labels.override() if labels else {}).items():
        entry = services.setdefault(svc, {})
        for key, value in extra.items():
            if key == "labels":
                entry["labels"] = {**entry.get("labels", {}), **value}
            elif key == "volumes":
                entry["volumes"] = [*entry.get("volumes", []), *value]
            else:
                entry[key] = value
    return yaml.safe_dump({"services": services}, sort_keys=False)


def data_volumes(plan: DeployPlan, target: HostTarget, number: int) -> list[tuple[str, Any]]:
    """Each data mount with its source under the app's `data/`, relative to the project directory: that sits
    as deep in every release, so the string (and the service's definition) is the same for all of them."""
    project_dir = posixpath.join(target.layout.release_dir(number), plan.compose.project_dir)
    return [(m.service, m.pointed_at(posixpath.relpath(target.layout.data_path(m.path), project_dir)))
            for m in plan.data_dirs]


def env_file(app: str, proxy_dir: str, env: Mapping[str, str], secrets: Mapping[str, str],
             profiles: tuple[str, ...] = ()) -> str:
    """The release's env file, read by `docker compose --env-file` for interpolation."""
    values = {"COMPOSE_PROJECT_NAME": app, "SHIPLINE_PROXY_DIR": proxy_dir}
    values |= {"COMPOSE_PROFILES": ",".join(profiles)} if profiles else {}
    values |= dict(env) | dict(secrets)
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


def render(plan: DeployPlan, target: HostTarget, number: int, images: Mapping[str, str],
           source: Mapping[str, bytes], secrets: Mapping[str, str], meta: Mapping[str, object], home: str) -> ReleaseFiles:
    """Every file of a release for one host. `source` holds the commit's files the plan uploads (path -> bytes);
    `home` is the SSH user's home there."""
    env = env_file(plan.app, f"{home}/{target.layout.proxy_dir}", plan.env, secrets, plan.profiles)
    files = {f"{SOURCE_DIR}/{path}": FileBlob(source[path], mode) for path, mode in plan.uploads}
    files |= {
        COMPOSE_CALL: FileBlob(plan.compose.to_json().encode()),
        ENV_FILE: FileBlob(env.encode(), 0o600),
        **own_files(plan, target, number, images, meta),
    }
    return ReleaseFiles(number, dict(images), files)


def own_files(plan: DeployPlan, target: HostTarget, number: int, images: Mapping[str, str],
              meta: Mapping[str, object]) -> dict[str, FileBlob]:
    """The files shipline derives for a release number (a rollback renders them anew over an earlier release's)."""
    return {
        OVERRIDE_FILE: FileBlob(override_file(images, target.rollout, number, data_volumes(plan, target, number),
                                              plan.proxy if isinstance(plan.proxy, LabelRouting) else None).encode()),
        RELEASE_FILE: FileBlob(json.dumps({**meta, "number": number, "images": dict(images)}, indent=2).encode()),
    }
