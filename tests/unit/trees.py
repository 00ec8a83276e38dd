"""An in-memory source tree: a commit's files as a dict, for compose and project tests without git."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from shipline.sourcetree import Entry, normalize


@dataclass
class MemoryTree:
    files: dict[str, str | bytes] = field(default_factory=dict)
    executable: set[str] = field(default_factory=set)
    label: str = "commit 0123456"

    def read(self, path: str) -> bytes | None:
        value = self.files.get(normalize(path))
        return value.encode() if isinstance(value, str) else value

    def is_file(self, path: str) -> bool:
        return normalize(path) in self.files

    def is_dir(self, path: str) -> bool:
        path = normalize(path)
        return path == "." or any(f.startswith(path + "/") for f in self.files)

    def files_under(self, path: str) -> list[Entry]:
        path = normalize(path)
        if path in self.files:
            return [Entry(path, path in self.executable)]
        prefix = "" if path == "." else path + "/"
        return [Entry(f, f in self.executable) for f in sorted(self.files) if f.startswith(prefix)]

    def dirname(self, path: str) -> str:
        return posixpath.dirname(path)
