"""`${VAR}` and `${VAR:-default}` in shipline.yml strings, as in Compose files.

Lets machine-specific or CI-provided values (a host key, a key path) stay out of the committed file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PATTERN = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\})")


# YAML aliases let a few hundred bytes stand for billions of values; interpolation copies what it walks,
# so it stops at this many (a real shipline.yml has a few hundred).
MAX_VALUES = 100_000


class MissingVariable(Exception):
    def __init__(self, path: str, name: str) -> None:
        super().__init__(name)
        self.path = path
        self.name = name


class TooManyValues(Exception):
    """The parsed file, with its aliases expanded, holds more than MAX_VALUES values."""

    def __init__(self, path: str, limit: int) -> None:
        super().__init__(path)
        self.path = path
        self.limit = limit


def interpolate(value: Any, env: Mapping[str, str], path: str = "", *, missing: str | None = None,
                limit: int = MAX_VALUES) -> Any:
    """Return `value` with variables replaced in every string; `$$` is a literal `$`.

    An unset variable without default raises MissingVariable, or becomes `missing` when that is given
    (read-only commands such as `shipline releases` need no host key). More than `limit` values in all
    (aliases counted each time they are used) raises TooManyValues before they are copied.
    """
    left = [limit]

    def walk(value: Any, path: str) -> Any:
        left[0] -= 1
        if left[0] < 0:
            raise TooManyValues(path, limit)
        if isinstance(value, str):
            return _PATTERN.sub(lambda m: _replace(m, env, path, missing), value)
        if isinstance(value, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    return walk(value, path)


def _replace(match: re.Match[str], env: Mapping[str, str], path: str, missing: str | None) -> str:
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
