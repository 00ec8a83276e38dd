"""Secret values: a type whose every rendering is masked, and a masker for output lines."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from .errors import ConfigError

MASK = "******"


class Secret:
    """A secret string. `str`, `repr` and formatting never show the value; `reveal()` does."""

    __slots__ = ("_value", "name")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name!r}, {MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.name == self.name and other._value == self._value

    def __hash__(self) -> int:
        return hash((self.name, self._value))


class Masker:
    """Replaces every known secret value in text; applied to all output shipline prints or stores."""

    def __init__(self, secrets: Iterable[Secret] = ()) -> None:
        # Longest first so a secret containing another is masked whole. Very short values
        # would mask ordinary words, so values under 4 characters are not masked (and rejected
        # by the config loader instead).
        self._values = sorted({s.reveal() for s in secrets if len(s.reveal()) >= 4}, key=len, reverse=True)

    def add(self, secret: Secret) -> None:
        if len(secret.reveal()) >= 4 and secret.reveal() not in self._values:
            self._values = sorted([*self._values, secret.reveal()], key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        return text


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a dotenv file: `NAME=value` lines, `#` comments, optional matching quotes.

    A double-quoted value may span lines (a PEM key): it ends at the line that ends with the closing quote.
    """
    values: dict[str, str] = {}
    lines = iter(path.read_text(encoding="utf-8").splitlines())
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        if not sep:
            continue
        value = value.strip()
        if value.startswith('"') and (len(value) == 1 or not value.endswith('"')):
            parts = [value]
            for more in lines:
                parts.append(more.rstrip())
                if parts[-1].endswith('"'):
                    break
            value = "\n".join(parts)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def resolve_secrets(names: Iterable[str], env: Mapping[str, str], secrets_file: Path,
                    warn: Callable[[str], None] | None = None, *, required: bool = True) -> dict[str, Secret]:
    """Each named secret from the environment, else from the secrets file; all missing ones reported at once.

    A secrets file that other users of the machine may read or change is reported to `warn`. With
    `required=False` (to mask what `shipline plan` prints), missing and unmaskable ones are left out.
    """
    from_file: dict[str, str] = {}
    if secrets_file.is_file():
        mode = secrets_file.stat().st_mode & 0o777
        if mode & 0o077 and warn:
            warn(f"{secrets_file} can be read or changed by other users of this machine (mode {mode:04o}); "
                 f"run `chmod 600 {secrets_file}`.")
        from_file = read_env_file(secrets_file)
    found: dict[str, Secret] = {}
    missing: list[str] = []
    for name in names:
        value = env.get(name) or from_file.get(name)
        if value:
            found[name] = Secret(name, value)
        else:
            missing.append(name)
    if not required:
        return {n: s for n, s in found.items() if len(s.reveal()) >= 4}
    if missing:
        raise ConfigError([
            f"{secrets_file}: secret {name} has no value. Export {name} in the environment "
            f"(CI: a repository secret) or add a line `{name}=...` to {secrets_file} (keep that file out of git)."
            for name in missing
        ])
    short = [n for n, s in found.items() if len(s.reveal()) < 4]
    if short:
        raise ConfigError([f"{secrets_file}: secret {n} is shorter than 4 characters, too short to be masked in logs. Use a longer value." for n in short])
    return found
