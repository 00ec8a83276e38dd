"""The commit to deploy: resolve a ref, and copy exactly that commit (never the work tree) into a workspace."""

from __future__ import annotations

import getpass
import os
import subprocess
import tarfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .errors import NotFound, ShiplineError


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ShiplineError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def resolve(repo: Path, ref: str) -> str:
    """Full SHA of `ref` (a branch, tag or SHA)."""
    proc = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise NotFound(f"{repo}: no commit {ref!r}. Give --ref as a branch, tag or commit SHA that exists in this repository.")
    return proc.stdout.strip()


def default_ref(repo: Path, branch: str) -> str:
    """HEAD of the deploy branch, local or (in a CI checkout) from origin."""
    for candidate in (f"refs/heads/{branch}", f"refs/remotes/origin/{branch}"):
        if subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", candidate],
                          capture_output=True).returncode == 0:
            return candidate
    raise NotFound(f"{repo}: the deploy branch {branch!r} does not exist. Set `branch:` in shipline.yml or pass --ref.")


def short_sha(repo: Path, sha: str, length: int) -> str:
    """Same as `git rev-parse --short=N`: longer when N characters would be ambiguous."""
    return _git(repo, "rev-parse", f"--short={length}", sha)


def source_url(repo: Path) -> str:
    """Where the code lives, as images' `source` label and `shipline plan` show it: without any credential."""
    proc = subprocess.run(["git", "-C", str(repo), "config", "--get", "remote.origin.url"], capture_output=True, text=True)
    return public_url(proc.stdout.strip()) or repo.resolve().as_uri()


def public_url(url: str) -> str:
    """`url` without the credentials a CI checkout often embeds (`https://user:token@host/...`, `https://token@...`).

    Only an SSH user name stays (`ssh://git@host/...`, `git@host:org/repo`): it is not a secret.
    """
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url  # scp-like `git@host:path` or a local path
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, has_password, _ = userinfo.partition(":")
    keep = f"{user}@" if parts.scheme in ("ssh", "git+ssh", "ssh+git") and not has_password else ""
    return urlunsplit(parts._replace(netloc=keep + hostport))


def show(repo: Path, sha: str, path: str) -> bytes:
    """One file as the commit has it (not as the work tree has it)."""
    proc = subprocess.run(["git", "-C", str(repo), "show", f"{sha}:{path}"], capture_output=True)
    if proc.returncode != 0:
        raise ShiplineError(f"git show {sha}:{path} failed in {repo}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def export(repo: Path, sha: str, workspace: Path) -> None:
    """`git archive` of the commit into `workspace`: uncommitted and untracked files cannot reach an image."""
    workspace.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(["git", "-C", str(repo), "archive", "--format=tar", sha], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        tar.extractall(workspace, filter="data")
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise ShiplineError(f"git archive {sha} failed: {err.decode().strip()}")


def actor() -> str:
    """Who triggered the deploy, as CI systems name them; locally, the OS user."""
    return os.environ.get("GITHUB_ACTOR") or os.environ.get("GITLAB_USER_LOGIN") or getpass.getuser()
