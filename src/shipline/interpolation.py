"""`${VAR}` in shipline.yml strings, with Compose's syntax (`variables`), read from the environment.

Lets machine-specific or CI-provided values (a host key, a key path) stay out of the committed file.
Only braced variables count: a `$VAR` in a test command is the shell's, not ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .variables import RequiredVariable, TemplateError, substitute

# YAML aliases let a few hundred bytes stand for billions of values; interpolation copies what it walks,
# so it stops at this many (a real shipline.yml has a few hundred).
MAX_VALUES = 100_000


class MissingVariable(Exception):
    def __init__(self, path: str, name: str, message: str = "") -> None:
        super().__init__(name)
        self.path = path
        self.name = name
        self.message = message  # from `${NAME?message}`


class BadTemplate(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


class TooManyValues(Exception):
    """The parsed file, with its aliases expanded, holds more than MAX_VALUES values."""

    def __init__(self, path: str, limit: int) -> None:
        super().__init__(path)
        self.path = path
        self.limit = limit


def interpolate(value: Any, env: Mapping[str, str], path: str = "", *, missing: str | None = None,
                limit: int = MAX_VALUES) -> Any:
    """Return `value` with variables replaced in every string; `$$` is a literal `$`.

    `${VAR}` with VAR unset or empty raises MissingVariable (stricter than Compose, which would use an
    empty string), as do `${VAR?msg}` and `${VAR:?msg}`; with `missing` given, such variables become
    `missing` instead (read-only commands such as `shipline releases` need no host key). More than `limit`
    values in all (aliases counted each time they are used) raises TooManyValues before they are copied.
    """
    left = [limit]

    def walk(value: Any, path: str) -> Any:
        left[0] -= 1
        if left[0] < 0:
            raise TooManyValues(path, limit)
        if isinstance(value, str):
            try:
                return substitute(value, env.get, braced_only=True, plain_required=True, missing=missing)
            except RequiredVariable as exc:
                raise MissingVariable(path, exc.name, exc.message) from None
            except TemplateError as exc:
                raise BadTemplate(path, str(exc)) from None
        if isinstance(value, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    return walk(value, path)
