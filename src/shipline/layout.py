"""Where shipline keeps its files on a host, relative to the SSH user's home directory."""

from __future__ import annotations

from dataclasses import dataclass

COMPOSE_FILE = "docker-compose.yml"
OVERRIDE_FILE = "shipline.override.yml"
ENV_FILE = ".env"
RELEASE_FILE = "release.json"


@dataclass(frozen=True)
class HostLayout:
    """`<base>/<app>/releases/<n>/` holds each release's Compose files and env file; `lock/` is the deploy lock."""

    base: str
    app: str

    @property
    def app_dir(self) -> str:
        return f"{self.base}/{self.app}"

    @property
    def releases_dir(self) -> str:
        return f"{self.app_dir}/releases"

    @property
    def lock_dir(self) -> str:
        return f"{self.app_dir}/lock"

    @property
    def proxy_dir(self) -> str:
        """Traefik's file-provider directory: stable across releases, so the proxy is never recreated for it."""
        return f"{self.app_dir}/proxy"

    @property
    def current_file(self) -> str:
        return f"{self.app_dir}/current"

    def release_dir(self, number: int) -> str:
        return f"{self.releases_dir}/{number}"

    def compose_files(self, number: int) -> list[str]:
        d = self.release_dir(number)
        return [f"{d}/{COMPOSE_FILE}", f"{d}/{OVERRIDE_FILE}"]

    def env_file(self, number: int) -> str:
        return f"{self.release_dir(number)}/{ENV_FILE}"
