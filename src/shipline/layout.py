"""Where shipline keeps its files on a host, relative to the SSH user's home directory."""

from __future__ import annotations

from dataclasses import dataclass

COMPOSE_FILE = "docker-compose.yml"
OVERRIDE_FILE = "shipline.override.yml"
ENV_FILE = ".env"
RELEASE_FILE = "release.json"
RELEASE_LABEL = "dev.shipline.release"  # on containers shipline starts beside others: which release made them


@dataclass(frozen=True)
class HostLayout:
    """`<base>/<app>/`: the ledger, the lock, `releases/<n>/` (each release's files), `proxy/` and `data/`."""

    base: str
    app: str

    @property
    def app_dir(self) -> str:
        return f"{self.base}/{self.app}"

    @property
    def releases_dir(self) -> str:
        return f"{self.app_dir}/releases"

    @property
    def ledger(self) -> str:
        return f"{self.app_dir}/ledger.jsonl"

    @property
    def lock_file(self) -> str:
        return f"{self.app_dir}/deploy.lock"

    @property
    def lock_holder(self) -> str:
        return f"{self.lock_file}.holder"

    @property
    def proxy_dir(self) -> str:
        """The proxy's route files: stable across releases, so the proxy is never recreated for them."""
        return f"{self.app_dir}/proxy"

    @property
    def data_dir(self) -> str:
        """Where relative bind mounts that are not files of the commit point: data stays put across releases."""
        return f"{self.app_dir}/data"

    def release_dir(self, number: int) -> str:
        return f"{self.releases_dir}/{number}"

    def compose_files(self, number: int) -> list[str]:
        d = self.release_dir(number)
        return [f"{d}/{COMPOSE_FILE}", f"{d}/{OVERRIDE_FILE}"]

    def env_file(self, number: int) -> str:
        return f"{self.release_dir(number)}/{ENV_FILE}"
