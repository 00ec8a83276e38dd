"""Settings from the environment (12-factor style), read once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Settings:
    database_host: str = "localhost"
    database_port: int = 5432
    database_name: str = "app"
    database_user: str = "app"
    database_password: str = field(default="", repr=False)  # never printed
    version: str = "unknown"
    port: int = 8000

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            database_host=env.get("DATABASE_HOST", "localhost"),
            database_port=int(env.get("DATABASE_PORT", "5432")),
            database_name=env.get("DATABASE_NAME", "app"),
            database_user=env.get("DATABASE_USER", "app"),
            database_password=_password(env),
            version=env.get("GIT_SHA", "unknown") or "unknown",
            port=int(env.get("PORT", "8000")),
        )


def _password(env: Mapping[str, str]) -> str:
    """DATABASE_PASSWORD, or the content of the file DATABASE_PASSWORD_FILE names (a Docker or Swarm secret)."""
    path = env.get("DATABASE_PASSWORD_FILE")
    if path:
        with open(path, encoding="utf-8") as f:
            return f.read().rstrip("\n")
    return env.get("DATABASE_PASSWORD", "")
