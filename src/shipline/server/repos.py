"""The server's git side: one bare repository per app to `git push` to, and one checkout per app to deploy from.

The checkout fetches exactly the commit a run is for before `shipline deploy --ref SHA` runs in it, so the
shipline.yml used is the one of that commit. The bare repository's post-receive hook queues a run through the
server's local API and streams its log back to the pusher, who sees it as `remote:` lines (Dokku-style).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from .settings import AppSettings, Settings

GIT_ENV = {"GIT_TERMINAL_PROMPT": "0"}  # a fetch needing a password fails instead of waiting for one
# The bare repository may belong to the SSH user that pushes; the server reads it anyway (its own data). Local
# transports drop `-c` settings from the environment, so the exception goes to the upload-pack command itself.
TRUSTED_UPLOAD_PACK = "git -c safe.directory=* upload-pack"

# POSIX sh and curl, so the SSH user that pushes needs nothing of the server's Python. The token goes to curl on
# its stdin (never in argv, where `ps` would show it); the server answers with the run's log as it is written.
HOOK = r"""#!/bin/sh
# Written by `shipline serve` at each start: queues a deploy of each pushed branch head and streams its log back.
url=$(git config --get shipline.url) app=$(git config --get shipline.app) token=$(git config --get shipline.token)
status=0
while read -r old new ref; do
  printf 'header = "Authorization: Bearer %s"\n' "$token" |
    curl --config - --silent --show-error --no-buffer --fail-with-body --max-time 86400 \
      --data-urlencode "ref=$ref" --data-urlencode "sha=$new" --data-urlencode "actor=${SHIPLINE_PUSHER:-$(id -un)}" \
      "$url/api/apps/$app/push?follow=1" || status=1
done
exit $status
"""


class GitFailed(Exception):
    pass


class Repos:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def bare(self, app: str) -> Path:
        return self.settings.git_path / f"{app}.git"

    def checkout(self, app: str) -> Path:
        return self.settings.data_path / "apps" / app / "checkout"

    def config_path(self, app: str) -> Path:
        return self.checkout(app) / self.settings.apps[app].config

    def source(self, app: str, via_push: bool) -> str:
        """Where a run's commit is fetched from: the bare repository for pushes, else the configured repository."""
        repository = self.settings.apps[app].repository
        return str(self.bare(app)) if via_push or not repository else repository

    def _upload_pack(self, source: str) -> list[str]:
        return [f"--upload-pack={TRUSTED_UPLOAD_PACK}"] if source.startswith(str(self.settings.git_path)) else []

    def setup(self, app: str, hook_token: str) -> None:
        """Create the bare repository if needed and (re)write its hook and the hook's settings."""
        settings = self.settings.apps[app]
        bare = self.bare(app)
        if not (bare / "HEAD").is_file():
            bare.parent.mkdir(parents=True, exist_ok=True)
            _sync_git(None, "init", "--quiet", "--bare", f"--initial-branch={settings.branch}", str(bare))
        for key, value in (("shipline.url", self.settings.local_url()), ("shipline.app", app),
                           ("shipline.token", hook_token)):
            _sync_git(None, "config", "--file", str(bare / "config"), key, value)  # whoever owns the repository
        hook = bare / "hooks" / "post-receive"
        hook.parent.mkdir(exist_ok=True)
        hook.write_text(HOOK)
        hook.chmod(0o755)
        os.chmod(bare / "config", 0o600)  # holds the hook token
        owner = bare.stat()
        if os.geteuid() == 0 and owner.st_uid != 0:  # the repository belongs to the SSH user that pushes: keep it so
            for path in (bare / "config", hook):
                os.chown(path, owner.st_uid, owner.st_gid)
        checkout = self.checkout(app)
        if not (checkout / ".git").exists():
            checkout.mkdir(parents=True, exist_ok=True)
            _sync_git(checkout, "init", "--quiet")
        _sync_git(checkout, "config", "core.hooksPath", "/dev/null")  # nothing in a fetched commit runs here

    async def prepare(self, app: str, sha: str | None, via_push: bool, log: Callable[[str], None]) -> str:
        """Fetch `sha` (None: the branch head) into the checkout and check it out; returns the full SHA."""
        settings: AppSettings = self.settings.apps[app]
        checkout, source = self.checkout(app), self.source(app, via_push)
        shown = "the pushed repository" if source == str(self.bare(app)) else re.sub(r"//[^/@]*@", "//", source)
        log(f"==> fetch {sha[:7] if sha else settings.branch} from {shown}")
        await _git(checkout, "remote", "remove", "origin", check=False)
        await _git(checkout, "remote", "add", "origin", source)
        fetch = ["fetch", "--quiet", "--no-tags", *self._upload_pack(source), "origin"]
        await _git(checkout, *fetch, "--prune", "+refs/heads/*:refs/remotes/origin/*")
        target = sha or f"refs/remotes/origin/{settings.branch}"
        if not await _has_commit(checkout, target) and sha:
            await _git(checkout, *fetch, sha, check=False)  # no longer on a branch
        if not await _has_commit(checkout, target):
            raise GitFailed(f"commit {target} is not in {shown}: was the branch force-pushed or deleted since?")
        await _git(checkout, "checkout", "--quiet", "--force", "--detach", target)
        full = (await _git(checkout, "rev-parse", "HEAD")).strip()
        log(f"    checked out {full[:7]}")
        return full

    def has_checkout(self, app: str) -> bool:
        return (self.checkout(app) / ".git").is_dir() and self.config_path(app).is_file()

    async def branch_head(self, app: str) -> str:
        """The deploy branch's head in the configured repository (or the pushed one): the dashboard's "deploy"."""
        settings = self.settings.apps[app]
        source = self.source(app, False)
        out = await _git(None, "ls-remote", *self._upload_pack(source), source, f"refs/heads/{settings.branch}")
        if not out.strip():
            raise GitFailed(f"branch {settings.branch} does not exist in {self.source(app, False)} yet; push it first")
        return out.split()[0]


async def _has_commit(repo: Path, ref: str) -> bool:
    proc = await asyncio.create_subprocess_exec("git", "-C", str(repo), "rev-parse", "--verify", "--quiet",
                                                f"{ref}^{{commit}}", stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL, env=_env())
    return await proc.wait() == 0


async def _git(repo: Path | None, *args: str, check: bool = True) -> str:
    argv = ["git", *(["-C", str(repo)] if repo else []), *args]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                stdin=asyncio.subprocess.DEVNULL, env=_env())
    out, err = await proc.communicate()
    if check and proc.returncode != 0:
        raise GitFailed(f"git {args[0]} failed: {_first_error(err.decode(errors='replace'))}")
    return out.decode(errors="replace")


def _sync_git(repo: Path | None, *args: str) -> None:
    import subprocess

    argv = ["git", *(["-C", str(repo)] if repo else []), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, env=_env())
    if proc.returncode != 0:
        raise GitFailed(f"git {args[0]} failed: {_first_error(proc.stderr)}")


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, **GIT_ENV, **(extra or {})}


def _first_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return next((ln for ln in lines if ln.startswith(("fatal:", "error:"))), lines[0] if lines else "no message")
