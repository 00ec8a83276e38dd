"""Where shipline keeps its files on a host, relative to the SSH user's home directory."""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass

COMPOSE_FILE = "docker-compose.yml"  # a release's only Compose file before releases carried the repository's
OVERRIDE_FILE = "shipline.override.yml"
ENV_FILE = ".env"
RELEASE_FILE = "release.json"
RELEASE_LABEL = "dev.shipline.release"  # on containers shipline starts beside others: which release made them
SOURCE_DIR = "src"  # in a release: the files it takes from the commit, at their repository paths
COMPOSE_CALL = "compose.json"  # in a release: how `docker compose` is called for it (ComposeCall)


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

    def data_path(self, path: str) -> str:
        """Where a data mount (`./pgdata`, relative to the project directory) lives: under `data/`, always."""
        parts = posixpath.normpath(path).split("/")
        return "/".join([self.data_dir, *("_up" if p == ".." else p for p in parts if p != ".")])


@dataclass(frozen=True)
class ComposeCall:
    """How `docker compose` runs a release: its files and env files, and the project directory that relative
    paths start from (the first Compose file's, inside the release's copy of the repository). Paths are
    relative to the release directory; the release keeps this in `compose.json`, so a rollback or an undo
    calls an earlier release exactly as it was deployed."""

    files: tuple[str, ...]
    project_dir: str
    env_files: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps({"files": list(self.files), "project_dir": self.project_dir,
                           "env_files": list(self.env_files)}, indent=2)

    @classmethod
    def from_json(cls, raw: bytes | None) -> ComposeCall | None:
        try:
            data = json.loads(raw or b"null")
            return cls(tuple(map(str, data["files"])), str(data["project_dir"]), tuple(map(str, data["env_files"])))
        except (ValueError, TypeError, KeyError):
            return None


# Releases deployed before `compose.json`: one Compose file, relative paths starting at the data directory.
LEGACY_CALL = ComposeCall((COMPOSE_FILE, OVERRIDE_FILE), "", (ENV_FILE,))
