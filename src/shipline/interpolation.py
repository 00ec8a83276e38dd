"""`${VAR}` and `${VAR:-default}` in shipline.yml strings, as in Compose files.

Lets machine-specific or CI-provided values (a host key, a key path) stay out of the committed file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PATTERN = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\})")


class MissingVariable(Exception):
    def __init__(self, path: str, name: str) -> None:
        super().__init__(name)
        self.path = path
        self.name = name


def interpolate(value: Any, env: Mapping[str, str], path: str = "", *, missing: str | None = None) -> Any:
    """Return `value` with variables replaced in every string; `$$` is a literal `$`.

    An unset variable without default raises MissingVariable, or becomes `missing` when that is given
    (read-only commands such as `shipline releases` need no host key).
    """
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group("name"), match.group("default")
            if name in env and env[name] != "":
                return env[name]
            if default is not None:
                return default
            if missing is not None:
                return missing
            raise MissingVariable(path, name)

        return _PATTERN.sub(replace, value)
    if isinstance(value, dict):
        return {k: interpolate(v, env, f"{path}.{k}" if path else str(k), missing=missing) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{path}[{i}]", missing=missing) for i, v in enumerate(value)]
    return value
