"""serve.yml: where the server keeps its data, who may log in, and the apps it deploys.

Checked whole before the server starts; each problem names the file, the key and the fix, like shipline.yml.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..config import read_yaml
from ..errors import ConfigError
from ..interpolation import MissingVariable, interpolate

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,47}$"
MIN_TOKEN = 16


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class Webhooks(_Strict):
    """One secret per forge; a forge without a secret has no webhook endpoint."""

    github: str | None = None
    gitea: str | None = None  # also Forgejo
    gitlab: str | None = None

    @field_validator("github", "gitea", "gitlab")
    @classmethod
    def _long_enough(cls, value: str | None) -> str | None:
        if value is not None and len(value) < MIN_TOKEN:
            raise ValueError(f"a webhook secret must have at least {MIN_TOKEN} characters")
        return value or None

    def secret(self, forge: str) -> str | None:
        value: str | None = getattr(self, forge)
        return value


class AppSettings(_Strict):
    """One deployed app: where its commits come from and how `shipline deploy` is run for it."""

    repository: str | None = None  # URL or path the server fetches webhook-announced commits from
    branch: str = "main"
    config: str = Field(default="shipline.yml", pattern=r"^[^/]")  # shipline.yml's path inside the repository
    webhooks: Webhooks = Field(default_factory=Webhooks)
    secrets_file: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    notify: str | None = Field(default=None, pattern=r"^https?://")
    timeout: Annotated[float, Field(gt=0)] = 3600
    cancel_grace: Annotated[float, Field(ge=1)] = 60

    @field_validator("config")
    @classmethod
    def _inside(cls, value: str) -> str:
        if ".." in Path(value).parts:
            raise ValueError("the path must stay inside the repository")
        return value


class Settings(_Strict):
    data_dir: str
    listen: str = Field(default="127.0.0.1:8700", pattern=r"^[^:]+:[0-9]+$")
    operator_token: str = Field(min_length=MIN_TOKEN)
    git_dir: str | None = None  # bare repositories for `git push`; default <data_dir>/git
    max_body: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 5 * 1024 * 1024
    secure_cookies: bool = False  # set when the dashboard is served over HTTPS (a proxy in front)
    # Addresses of a reverse proxy whose X-Forwarded-For is believed (rate limits count the real client then).
    trusted_proxies: list[str] = Field(default_factory=list)
    apps: dict[Annotated[str, Field(pattern=NAME_PATTERN)], AppSettings] = Field(min_length=1)

    @property
    def data_path(self) -> Path:
        return Path(os.path.expanduser(self.data_dir)).resolve()

    @property
    def git_path(self) -> Path:
        return Path(os.path.expanduser(self.git_dir)).resolve() if self.git_dir else self.data_path / "git"

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    def local_url(self) -> str:
        """Where hooks on this machine reach the server."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


HINTS = {
    "operator_token": f"Set `operator_token: ${{SHIPLINE_OPERATOR_TOKEN}}` and export a random value of at least {MIN_TOKEN} characters "
                      "(`openssl rand -hex 24`); the dashboard and the API refuse everyone without it.",
    "data_dir": "Give a directory the server may write, e.g. `data_dir: /var/lib/shipline`.",
    "apps": "List the apps under `apps:`, e.g. `apps: {myshop: {repository: https://example.com/acme/myshop.git}}`.",
    "github": f"Use the same random secret (at least {MIN_TOKEN} characters) in the forge's webhook settings.",
    "gitea": f"Use the same random secret (at least {MIN_TOKEN} characters) in the forge's webhook settings.",
    "gitlab": f"Use the same random secret token (at least {MIN_TOKEN} characters) in the forge's webhook settings.",
}


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out.replace(".[key]", "")


def parse_settings(data: Any, file: str, env: Mapping[str, str]) -> Settings:
    if not isinstance(data, dict):
        raise ConfigError([f"{file}: the file must be a YAML mapping with `data_dir:`, `operator_token:` and `apps:`."])
    try:
        data = interpolate(data, env)
    except MissingVariable as exc:
        raise ConfigError([f"{file}: {exc.path}: uses ${{{exc.name}}}, but the environment variable {exc.name} is not set "
                           f"(or is empty). Export it before starting `shipline serve`."]) from None
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            key = next((str(p) for p in reversed(loc) if isinstance(p, str) and p != "[key]"), "")
            given = err.get("input")
            shown = "" if isinstance(given, dict | list) or given is None or key in ("operator_token", "github", "gitea", "gitlab") \
                else f" (got {given!r})"
            msg = "unknown key" if err["type"] == "extra_forbidden" else (
                "this key is required" if err["type"] == "missing" else str(err["msg"]).removeprefix("Value error, "))
            problems.append(f"{file}: {_loc(loc) or '(top level)'}: {msg}{shown}. {HINTS.get(key, '')}".rstrip())
        raise ConfigError(problems) from None


def load_settings(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    file = str(path)
    data = read_yaml(path, "Write a serve.yml (see docs/serve.md) and pass it with `--config`.")
    settings = parse_settings(data, file, os.environ if env is None else env)
    problems = []
    for name, app in settings.apps.items():
        if app.secrets_file and not Path(os.path.expanduser(app.secrets_file)).is_file():
            problems.append(f"{file}: apps.{name}.secrets_file: {app.secrets_file} does not exist. "
                            "Give the dotenv file holding the app's secrets (NAME=value lines, mode 0600).")
    if problems:
        raise ConfigError(problems)
    return settings
