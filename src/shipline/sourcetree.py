"""Where shipline reads a project's files from: the working tree, or exactly one commit.

`shipline plan` and `deploy` read shipline.yml, the Compose files and every file they reference from the
commit being deployed (`git ls-tree` once, then `git cat-file --batch`), so what is planned is what is
committed; `init` reads the working tree. Paths are relative to the repository root, with `/`.
"""

from __future__ import annotations

import bisect
import posixpath
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .errors import ShiplineError


@dataclass(frozen=True)
class Entry:
    path: str
    executable: bool = False


class SourceTree(Protocol):
    label: str  # how messages name it: "the working tree" or "commit 3f2a9c1"

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None when there is no such file."""
        ...

    def is_file(self, path: str) -> bool: ...

    def is_dir(self, path: str) -> bool: ...

    def files_under(self, path: str) -> list[Entry]:
        """Every file below a directory (or the file itself), sorted."""
        ...


def normalize(path: str) -> str:
    """A repository-relative path in canonical form (`a/./b/../c` -> `a/c`, `.` for the root)."""
    return posixpath.normpath(path) if path else "."


@dataclass
class WorkTree:
    """The files on disk under `root` (what `shipline init` sees)."""

    root: Path
    label: str = "the working tree"

    def _path(self, path: str) -> Path:
        return self.root / normalize(path)

    def read(self, path: str) -> bytes | None:
        p = self._path(path)
        try:
            return p.read_bytes() if p.is_file() else None
        except OSError:
            return None

    def is_file(self, path: str) -> bool:
        return self._path(path).is_file()

    def is_dir(self, path: str) -> bool:
        return self._path(path).is_dir()

    def files_under(self, path: str) -> list[Entry]:
        p = self._path(path)
        if p.is_file():
            return [Entry(normalize(path), bool(p.stat().st_mode & 0o111))]
        if not p.is_dir():
            return []
        return sorted(
            (Entry(f.relative_to(self.root).as_posix(), bool(f.stat().st_mode & 0o111))
             for f in p.rglob("*") if f.is_file() and ".git" not in f.relative_to(self.root).parts),
            key=lambda e: e.path)


@dataclass
class CommitTree:
    """The files of one commit, listed once; contents read on demand and cached."""

    repo: Path
    sha: str
    label: str = ""
    _files: dict[str, Entry] = field(default_factory=dict)
    _dirs: set[str] = field(default_factory=set)
    _cache: dict[str, bytes | None] = field(default_factory=dict)
    _sorted: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.label = self.label or f"commit {self.sha[:7]}"
        proc = subprocess.run(["git", "-C", str(self.repo), "ls-tree", "-r", "-z", "--full-tree", self.sha],
                              capture_output=True)
        if proc.returncode != 0:
            raise ShiplineError(f"cannot list the files of {self.sha} in {self.repo}: "
                                f"{proc.stderr.decode('utf-8', 'replace').strip()}")
        for record in proc.stdout.split(b"\0"):
            if not record:
                continue
            meta, _, name = record.partition(b"\t")
            mode, kind, _obj = meta.decode().split(" ")
            path = name.decode("utf-8", "surrogateescape")
            if kind != "blob":
                continue  # submodules: not files of this commit
            self._files[path] = Entry(path, mode == "100755")
            parent = posixpath.dirname(path)
            while parent and parent not in self._dirs:
                self._dirs.add(parent)
                parent = posixpath.dirname(parent)
        self._sorted = sorted(self._files)

    def read(self, path: str) -> bytes | None:
        path = normalize(path)
        if path not in self._files:
            return None
        if path not in self._cache:
            proc = subprocess.run(["git", "-C", str(self.repo), "cat-file", "blob", f"{self.sha}:{path}"],
                                  capture_output=True)
            self._cache[path] = proc.stdout if proc.returncode == 0 else None
        return self._cache[path]

    def is_file(self, path: str) -> bool:
        return normalize(path) in self._files

    def is_dir(self, path: str) -> bool:
        path = normalize(path)
        return path == "." or path in self._dirs

    def files_under(self, path: str) -> list[Entry]:
        path = normalize(path)
        if path in self._files:
            return [self._files[path]]
        if not self.is_dir(path):
            return []
        prefix = "" if path == "." else path + "/"
        out = []
        for p in self._sorted[bisect.bisect_left(self._sorted, prefix):]:
            if not p.startswith(prefix):
                break
            out.append(self._files[p])
        return out
