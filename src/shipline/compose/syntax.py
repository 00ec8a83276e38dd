"""Compose's short and long forms, read into one shape: volumes, ports, lists-or-mappings, env files.

Each reader takes the value as written (after interpolation) and returns plain data, or raises
ComposeSyntaxError with what is wrong; the model turns that into a problem naming the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


class ComposeSyntaxError(Exception):
    """A value Compose would refuse; the message says what was expected."""


@dataclass(frozen=True)
class Mount:
    """One entry of a service's `volumes:`."""

    type: str  # bind | volume | tmpfs | npipe | image | cluster
    source: str | None
    target: str
    read_only: bool = False
    short: bool = True  # written as `source:target[:mode]`
    mode: str = ""  # the short form's options after the second colon, e.g. "ro,z"


def is_file_path(source: str) -> bool:
    """Compose's rule: a source starting with `.`, `/` or `~` (or a Windows drive) is a host path."""
    if not source:
        return False
    if source[0] in "./~" or source.startswith("\\\\"):
        return True
    return len(source) > 1 and source[0].isalpha() and source[1] == ":"


def parse_volume(spec: str) -> Mount | None:
    """`[SOURCE:]TARGET[:MODE]` as compose-go's `format.ParseVolume` splits it; None when it is empty."""
    if not spec:
        return None
    if len(spec) <= 2:
        return Mount("volume", None, spec)
    fields: list[str] = []
    buf: list[str] = []
    depth = 0
    for i, ch in enumerate(spec):
        if ch == "$" and spec[i + 1: i + 2] == "{":
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
        if ch == ":" and depth == 0 and not (len(buf) == 1 and buf[0].isalpha()):
            fields.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    fields.append("".join(buf))
    if any(f == "" for f in fields) or len(fields) > 3:
        raise ComposeSyntaxError(f"`{spec}` is not SOURCE:TARGET[:MODE]")
    if len(fields) == 1:
        return Mount("volume", None, fields[0])
    source, target = fields[0], fields[1]
    mode = fields[2] if len(fields) == 3 else ""
    read_only = "ro" in mode.split(",")
    return Mount("bind" if is_file_path(source) else "volume", source, target, read_only, True, mode)


def long_volume(entry: dict[str, Any]) -> Mount:
    kind = str(entry.get("type", "volume"))
    target = entry.get("target")
    if not isinstance(target, str) or not target:
        raise ComposeSyntaxError("a volume in the long form needs `target:`")
    source = entry.get("source")
    return Mount(kind, None if source is None else str(source), target, bool(entry.get("read_only", False)), False)


def mount(entry: Any) -> Mount | None:
    if isinstance(entry, str):
        return parse_volume(entry)
    if isinstance(entry, dict):
        return long_volume(entry)
    raise ComposeSyntaxError("each volume is a string `SOURCE:TARGET[:MODE]` or a mapping with `type`, `source`, `target`")


@dataclass(frozen=True)
class Port:
    """One entry of `ports:`; `published` is the host port (or range), None when Docker picks one."""

    target: str
    published: str | None
    host_ip: str = ""
    protocol: str = "tcp"


_PORT = re.compile(r"^\d+(?:-\d+)?$")


def port(entry: Any) -> Port:
    if isinstance(entry, bool):
        raise ComposeSyntaxError(f"{entry!r} is not a port")
    if isinstance(entry, int):
        return Port(str(entry), None)
    if isinstance(entry, dict):
        target = entry.get("target")
        if target is None:
            raise ComposeSyntaxError("a port in the long form needs `target:`")
        published = entry.get("published")
        return Port(str(target), None if published in (None, "") else str(published), str(entry.get("host_ip") or ""),
                    str(entry.get("protocol") or "tcp"))
    if not isinstance(entry, str):
        raise ComposeSyntaxError("each port is `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]` or a mapping")
    text, _, protocol = entry.partition("/")
    host_ip = ""
    if text.startswith("["):
        close = text.find("]:")
        if close < 0:
            raise ComposeSyntaxError(f"`{entry}` is not a port mapping")
        host_ip, text = text[1:close], text[close + 2:]
        fields = text.split(":")
        if len(fields) == 1:  # `[::1]:80`: Compose reads the part after the address as the host port
            fields = [fields[0], fields[0]]
    else:
        fields = text.split(":")
        if len(fields) == 3:
            host_ip = fields.pop(0)
        elif len(fields) > 3:  # an unbracketed IPv6 address
            host_ip = ":".join(fields[:-2])
            fields = fields[-2:]
    target = fields[-1]
    published = fields[-2] if len(fields) >= 2 and fields[-2] else None
    if not _PORT.match(target) or (published is not None and not _PORT.match(published)):
        raise ComposeSyntaxError(f"`{entry}` is not `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]`")
    return Port(target, published, host_ip, protocol or "tcp")


def mapping(value: Any, what: str) -> dict[str, str | None]:
    """`KEY=value` lists and `KEY: value` mappings alike (environment, labels, build args)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): None if v is None else scalar(v) for k, v in value.items()}
    if isinstance(value, list):
        out: dict[str, str | None] = {}
        for item in value:
            if not isinstance(item, str | int | float) or isinstance(item, bool):
                raise ComposeSyntaxError(f"each entry of {what} is `KEY=value` or `KEY`")
            key, eq, val = str(item).partition("=")
            out[key] = val if eq else None
        return out
    raise ComposeSyntaxError(f"{what} is a mapping or a list of `KEY=value`")


def scalar(value: Any) -> str:
    """A YAML scalar as Compose turns it into a string (`true`, not Python's `True`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def names(value: Any, what: str) -> list[str]:
    """A list of names, or a mapping whose keys are the names (`depends_on`, `networks`)."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [str(k) for k in value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ComposeSyntaxError(f"{what} is a list of names or a mapping")


@dataclass(frozen=True)
class Dependency:
    condition: str = "service_started"  # service_started | service_healthy | service_completed_successfully
    required: bool = True


CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")


def depends_on(value: Any) -> dict[str, Dependency]:
    if isinstance(value, dict):
        out = {}
        for name, spec in value.items():
            spec = spec if isinstance(spec, dict) else {}
            condition = str(spec.get("condition", "service_started"))
            if condition not in CONDITIONS:
                raise ComposeSyntaxError(f"{name}: condition {condition!r} is not one of {', '.join(CONDITIONS)}")
            out[str(name)] = Dependency(condition, spec.get("required", True) is not False)
        return out
    return {n: Dependency() for n in names(value, "depends_on")}


@dataclass(frozen=True)
class EnvFile:
    path: str
    required: bool = True


def env_files(value: Any) -> list[EnvFile]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(EnvFile(item))
        elif isinstance(item, dict) and isinstance(item.get("path"), str):
            out.append(EnvFile(item["path"], item.get("required", True) is not False))
        else:
            raise ComposeSyntaxError("env_file is a path, or a list of paths or of `{path, required}`")
    return out


def mounted_names(value: Any, what: str) -> list[str]:
    """Names a service mounts from top-level `secrets:`/`configs:` (short or long form)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ComposeSyntaxError(f"{what} is a list")
    out = []
    for item in value:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and isinstance(item.get("source"), str):
            out.append(item["source"])
        else:
            raise ComposeSyntaxError(f"each entry of {what} is a name or `{{source: NAME, target: PATH}}`")
    return out


def command(value: Any) -> list[str] | str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return [scalar(v) for v in value]
    raise ComposeSyntaxError("a command is a string or a list")
