"""Which services a release changes, by content: the image a service runs and its effective definition.

A new commit gives every built image a new tag, and a new release a new directory, so neither tags nor paths
say whether a service changed. What does: the image's content (its ID on the host) and the service's
definition as Compose resolves it (`docker compose config`), with the release directory written as a
placeholder, the files it mounts from that directory replaced by their content digests, and what Compose
itself ignores when deciding to recreate (build, depends_on, scale, profiles) left out. A service whose three
parts equal the live release's keeps its running container: no restart, no switch.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

# Keys Compose leaves out of its own config hash (they never require a new container), and labels shipline
# sets per release on containers it starts beside others.
IGNORED_KEYS = ("build", "depends_on", "scale", "profiles", "pull_policy", "image")
IGNORED_LABELS = ("dev.shipline.release",)
TOP_LEVEL = ("networks", "volumes", "configs", "secrets")
RELEASE = "{release}"


@dataclass(frozen=True)
class ServiceState:
    """What decides a service's containers, as three digests (short enough for the ledger and the plan)."""

    image: str  # the image's ID on the host ("" when it is not there)
    definition: str  # sha256 of the normalised Compose definition
    files: str  # sha256 of the release files it mounts ("" for none)

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> ServiceState | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(str(data["image"]), str(data["definition"]), str(data["files"]))
        except KeyError:
            return None


def _sha(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _replace_paths(value: Any, release_dir: str) -> Any:
    if isinstance(value, str):
        return value.replace(release_dir, RELEASE)
    if isinstance(value, list):
        return [_replace_paths(v, release_dir) for v in value]
    if isinstance(value, dict):
        return {k: _replace_paths(v, release_dir) for k, v in value.items()}
    return value


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)


def normalised(config: Mapping[str, Any], service: str, release_dir: str) -> dict[str, Any]:
    """The service's definition as it decides its container, with what it references at the top level."""
    spec = dict(config.get("services", {}).get(service) or {})
    for key in IGNORED_KEYS:
        spec.pop(key, None)
    if isinstance(spec.get("deploy"), dict):
        spec["deploy"] = {k: v for k, v in spec["deploy"].items() if k != "replicas"}
    if isinstance(spec.get("labels"), dict):
        spec["labels"] = {k: v for k, v in spec["labels"].items() if k not in IGNORED_LABELS}
    referenced: dict[str, Any] = {}
    for kind in TOP_LEVEL:
        defined = config.get(kind) or {}
        used = spec.get(kind) or {}
        names = used if isinstance(used, dict) else [u.get("source") if isinstance(u, dict) else u for u in used]
        if kind == "volumes":
            names = [m.get("source") for m in spec.get("volumes") or [] if isinstance(m, dict) and m.get("type") == "volume"]
        referenced[kind] = {n: defined[n] for n in names if isinstance(n, str) and n in defined}
    result: dict[str, Any] = _replace_paths({"service": spec, "referenced": referenced}, release_dir.rstrip("/"))
    return result


def mounted_files(definition: Mapping[str, Any], files: Mapping[str, str]) -> dict[str, str]:
    """The release files (path relative to the release directory -> digest) a normalised definition uses:
    each `{release}/path` it names, or every file under it when it names a directory."""
    used: dict[str, str] = {}
    for text in _strings(definition):
        for match in re.finditer(re.escape(RELEASE) + r"/([^\s:,\"']+)", text):
            path = match.group(1).rstrip("/")
            used |= {p: d for p, d in files.items() if p == path or p.startswith(path + "/")}
    return used


def service_states(config: Mapping[str, Any], release_dir: str, image_ids: Mapping[str, str],
                   files: Mapping[str, str]) -> dict[str, ServiceState]:
    """Every service's state in a release: `config` is `docker compose config --format json`, `image_ids`
    maps each service to its image's ID on the host, `files` the release's files to their digests."""
    states = {}
    for service in config.get("services", {}):
        definition = normalised(config, service, release_dir)
        used = mounted_files(definition, files)
        states[service] = ServiceState(image_ids.get(service, ""), _sha(definition), _sha(used) if used else "")
    return states


def change_reason(new: ServiceState, live: ServiceState | None, running: bool = True) -> str | None:
    """Why a service must be rolled out (None: it is unchanged and keeps its container)."""
    if live is None:
        return "not in the live release"
    if not running:
        return "no running container"
    if not new.image:
        return "image not on the host"
    why = [what for what, a, b in (("image", new.image, live.image), ("definition", new.definition, live.definition),
                                   ("mounted files", new.files, live.files)) if a != b]
    return f"{' and '.join(why)} changed" if why else None
