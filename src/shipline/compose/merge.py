"""Merging Compose files the way `docker compose -f a.yml -f b.yml` does (compose-go `override` package).

Mappings merge key by key, sequences append, scalars are replaced; the exceptions are Compose's own:
`command`, `entrypoint` and `healthcheck.test` are replaced whole; `environment`, `labels`, `build.args` and
friends merge by variable name; `depends_on` and `networks` merge as mappings; `volumes`, `secrets` and
`configs` entries with the same target replace each other, as do identical `ports`. `!reset` removes what
earlier files set, `!override` replaces it without merging.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..yamlload import Override, Reset
from .syntax import ComposeSyntaxError, parse_volume

Path = tuple[str, ...]


def _matches(path: Path, pattern: str) -> bool:
    parts = pattern.split(".")
    return len(parts) == len(path) and all(p in ("*", q) for p, q in zip(parts, path, strict=True))


def _sequence(value: Any) -> list[Any]:
    """`KEY: value` mappings as Compose's `KEY=value` lists, so both forms merge the same way."""
    if isinstance(value, dict):
        out: list[Any] = []
        for key, item in value.items():
            if item is None:
                out.append(str(key))
            elif isinstance(item, list):
                out += [f"{key}={_scalar(v)}" for v in item]
            else:
                out.append(f"{key}={_scalar(item)}")
        return sorted(out, key=str)
    if isinstance(value, list):
        return list(value)
    return [value] if isinstance(value, str) else []


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _mapping(value: Any, default: dict[str, Any] | None) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return {str(v): dict(default) if default is not None else None for v in value}
    return {}


def _to_sequence(base: Any, other: Any, path: Path) -> Any:
    return _sequence(base) + _sequence(other)


def _replace(base: Any, other: Any, path: Path) -> Any:
    return other


def _depends_on(base: Any, other: Any, path: Path) -> Any:
    default = {"condition": "service_started", "required": True}
    return _merge_mappings(_mapping(base, default), _mapping(other, default), path)


def _as_mapping(base: Any, other: Any, path: Path) -> Any:
    return _merge_mappings(_mapping(base, None), _mapping(other, None), path)


def _build(base: Any, other: Any, path: Path) -> Any:
    def as_build(value: Any) -> dict[str, Any]:
        return {"context": value} if isinstance(value, str) else dict(value) if isinstance(value, dict) else {}

    return _merge_mappings(as_build(base), as_build(other), path)


def _extra_hosts(base: Any, other: Any, path: Path) -> Any:
    left = _sequence(base)
    return left + [v for v in _sequence(other) if v not in left]


def _logging(base: Any, other: Any, path: Path) -> Any:
    same_driver = isinstance(base, dict) and isinstance(other, dict) and (
        "driver" not in base or "driver" not in other or base["driver"] == other["driver"])
    return _merge_mappings(dict(base), other, path) if same_driver else other


Merger = Callable[[Any, Any, Path], Any]
SPECIAL: dict[str, Merger] = {
    "networks.*.labels": _to_sequence,
    "volumes.*.labels": _to_sequence,
    "services.*.annotations": _to_sequence,
    "services.*.build": _build,
    "services.*.build.args": _to_sequence,
    "services.*.build.additional_contexts": _to_sequence,
    "services.*.build.extra_hosts": _extra_hosts,
    "services.*.build.labels": _to_sequence,
    "services.*.command": _replace,
    "services.*.depends_on": _depends_on,
    "services.*.deploy.labels": _to_sequence,
    "services.*.dns": _to_sequence,
    "services.*.dns_opt": _to_sequence,
    "services.*.dns_search": _to_sequence,
    "services.*.entrypoint": _replace,
    "services.*.env_file": _to_sequence,
    "services.*.label_file": _to_sequence,
    "services.*.environment": _to_sequence,
    "services.*.extra_hosts": _extra_hosts,
    "services.*.healthcheck.test": _replace,
    "services.*.labels": _to_sequence,
    "services.*.logging": _logging,
    "services.*.networks": _as_mapping,
    "services.*.sysctls": _to_sequence,
    "services.*.tmpfs": _to_sequence,
}


def merge(base: Any, other: Any, path: Path = ()) -> Any:
    """`other` (a later file) merged into `base`; neither is modified."""
    if isinstance(other, Reset):
        return None
    if isinstance(other, Override):
        return strip_tags(other.value)
    for pattern, merger in SPECIAL.items():
        if _matches(path, pattern):
            return merger(strip_tags(base), strip_tags(other), path)
    if other is None:
        return base
    if isinstance(base, dict) and isinstance(other, dict):
        return _merge_mappings(dict(base), other, path)
    if isinstance(base, list) and isinstance(other, list):
        return list(base) + strip_tags(other)
    return strip_tags(other)


def _merge_mappings(mapping: dict[Any, Any], other: dict[Any, Any], path: Path) -> dict[Any, Any]:
    for key, value in other.items():
        if isinstance(value, Reset):
            mapping.pop(key, None)
        elif key not in mapping:
            mapping[key] = strip_tags(value)
        else:
            merged = merge(mapping[key], value, (*path, str(key)))
            mapping[key] = merged
    return mapping


def strip_tags(value: Any) -> Any:
    """A value without `!reset`/`!override` wrappers (in the first file they mean nothing to merge)."""
    if isinstance(value, Override):
        return strip_tags(value.value)
    if isinstance(value, dict):
        return {k: strip_tags(v) for k, v in value.items() if not isinstance(v, Reset)}
    if isinstance(value, list):
        return [strip_tags(v) for v in value if not isinstance(v, Reset)]
    return None if isinstance(value, Reset) else value


# --- unicity: entries of some sequences that share a key replace each other (compose-go `EnforceUnicity`) ---

def _key_value(entry: Any) -> str:
    return str(entry).split("=", 1)[0] if isinstance(entry, str) else repr(entry)


def _volume_target(entry: Any) -> str:
    if isinstance(entry, dict):
        return str(entry.get("target", repr(entry)))
    if isinstance(entry, str):
        try:
            mount = parse_volume(entry)
        except ComposeSyntaxError:
            return entry  # reported when the model reads it
        return mount.target if mount else entry
    return repr(entry)


def _mount(default: str) -> Callable[[Any], str]:
    def index(entry: Any) -> str:
        if isinstance(entry, str):
            return f"{default}/{entry}"
        if isinstance(entry, dict):
            return str(entry["target"]) if "target" in entry else f"{default}/{entry.get('source')}"
        return repr(entry)
    return index


def _port(entry: Any) -> str:
    if isinstance(entry, dict):
        return (f"{entry.get('host_ip', '0.0.0.0')}:{entry.get('published')}:{entry.get('target')}"
                f"/{entry.get('protocol', 'tcp')}")
    return str(entry)


def _env_file(entry: Any) -> str:
    return str(entry.get("path")) if isinstance(entry, dict) else str(entry)


UNIQUE: dict[str, Callable[[Any], str]] = {  # keys of a service, dotted below it
    "build.args": _key_value,
    "build.labels": _key_value,
    "cap_add": _key_value,
    "cap_drop": _key_value,
    "configs": _mount(""),
    "deploy.labels": _key_value,
    "dns": _key_value,
    "environment": _key_value,
    "env_file": _env_file,
    "expose": str,
    "labels": _key_value,
    "ports": _port,
    "profiles": _key_value,
    "secrets": _mount("/run/secrets"),
    "sysctls": _key_value,
    "tmpfs": _key_value,
    "volumes": _volume_target,
}


def enforce_unicity(data: Any) -> Any:
    """Later entries replace earlier ones with the same key, in place of the earlier one (services only)."""
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        return data
    return {**data, "services": {name: _unique_service(spec) for name, spec in services.items()}}


def _unique_service(spec: Any) -> Any:
    if not isinstance(spec, dict):
        return spec
    out = dict(spec)
    for dotted, index in UNIQUE.items():
        parent, _, key = dotted.rpartition(".")
        holder = out
        if parent:
            if not isinstance(out.get(parent), dict):
                continue
            holder = out[parent] = dict(out[parent])
        if isinstance(holder.get(key), list):
            holder[key] = _unique(holder[key], index)
    return out


def _unique(entries: list[Any], index: Callable[[Any], str]) -> list[Any]:
    out: list[Any] = []
    positions: dict[str, int] = {}
    for entry in entries:
        key = index(entry)
        if key in positions:
            out[positions[key]] = entry
        else:
            positions[key] = len(out)
            out.append(entry)
    return out
