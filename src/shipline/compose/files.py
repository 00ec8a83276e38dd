"""The files of the repository a Compose project needs on the host, and the directories that hold its data.

Compose reads some files itself (the Compose files, `extends`/`include` targets, `env_file`, the project's
`.env`) and mounts others into containers (relative bind mounts, file-based `configs` and `secrets`). Those
that are in the deployed commit are uploaded with the release, secrets and env files readable by the owner
only. A relative bind mount whose path is not in the commit is where a service keeps data: it is pointed at
the app's stable `data/` directory on the host, so the data never moves between releases.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..sourcetree import SourceTree, normalize
from .model import ComposeProject, Problem, TopLevel
from .syntax import parse_volume

PLACEHOLDERS = frozenset({".gitkeep", ".keep", ".gitignore", ".placeholder", ".empty"})
SECRET_MODE, EXEC_MODE, FILE_MODE = 0o600, 0o755, 0o644


@dataclass(frozen=True)
class RepoFile:
    path: str  # repository-relative
    mode: int
    keys: tuple[str, ...]  # the Compose keys that need it


@dataclass(frozen=True)
class DataDir:
    """A relative bind mount that is not in the commit: the service's data, kept across releases."""

    service: str
    index: int  # position in the service's `volumes`
    key: str
    path: str  # relative to the project directory, as the mount names it; its place under the host's data/
    entry: str | dict[str, Any]  # the `volumes` entry as written (an override replaces it by its target)

    def pointed_at(self, source: str) -> str | dict[str, Any]:
        """The same mount with its source replaced (Compose merges `volumes` entries by target)."""
        if isinstance(self.entry, dict):
            return {**self.entry, "source": source}
        mount = parse_volume(self.entry)
        assert mount is not None
        return ":".join([source, mount.target, *([mount.mode] if mount.mode else [])])


@dataclass(frozen=True)
class ReleaseInputs:
    files: tuple[RepoFile, ...]
    data_dirs: tuple[DataDir, ...]
    problems: tuple[Problem, ...] = ()


@dataclass
class _Collector:
    project: ComposeProject
    tree: SourceTree
    files: dict[str, tuple[int, list[str]]] = field(default_factory=dict)
    data: list[DataDir] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def add(self, path: str, mode: int, key: str) -> None:
        if path not in self.files:
            self.files[path] = (mode, [key])
            return
        old_mode, keys = self.files[path]
        keys.append(key)
        # The stricter mode wins: a file that is also a secret stays private.
        self.files[path] = (SECRET_MODE if SECRET_MODE in (mode, old_mode) else max(mode, old_mode), keys)

    def problem(self, key: str, message: str) -> None:
        self.problems.append(Problem(self.project.where, key, message))

    def resolve(self, path: str, key: str) -> str | None:
        """A repository-relative path for a project-relative one; None (and a problem) when it leaves the repository."""
        full = normalize(posixpath.join(self.project.project_dir, path))
        if full == ".." or full.startswith("../"):
            self.problem(key, f"{path} is outside the repository. shipline deploys files of the commit only: "
                         "move it into the repository, or mount an absolute path that exists on the server.")
            return None
        return full


def release_inputs(project: ComposeProject, tree: SourceTree, active: Iterable[str]) -> ReleaseInputs:
    """What the active services need from the commit (uploaded) and which of their mounts are data."""
    c = _Collector(project, tree)
    for path in project.files:
        c.add(path, FILE_MODE, "compose")
    for ref in project.compose_refs:
        if tree.is_file(ref.path):
            c.add(ref.path, FILE_MODE, ref.key)
    dotenv = normalize(posixpath.join(project.project_dir, ".env"))
    if tree.is_file(dotenv):
        c.add(dotenv, SECRET_MODE, ".env")  # Compose reads it for `${VAR}` defaults
    secrets_used: dict[str, str] = {}
    configs_used: dict[str, str] = {}
    for name in active:
        svc = project.services[name]
        for i, env in enumerate(svc.env_files):
            key = f"{svc.key}.env_file[{i}]"
            if posixpath.isabs(env.path) or env.path.startswith("~"):
                continue  # a file of the server
            env_path = c.resolve(env.path, key)
            if env_path is None:
                continue
            if tree.is_file(env_path):
                c.add(env_path, SECRET_MODE, key)
            elif env.required:
                c.problem(key, f"{env.path} is not in {tree.label}. Commit it, mark it optional "
                          f"(`env_file: [{{path: {env.path}, required: false}}]`), or move its variables into "
                          "shipline.yml (`env:` for plain values, `secrets:` for the others).")
        for i, mount in enumerate(svc.volumes):
            if mount.type != "bind" or not mount.source or not mount.source.startswith("."):
                continue  # named volumes, tmpfs, and absolute or `~` paths of the server
            key = f"{svc.key}.volumes[{i}]"
            source = c.resolve(mount.source, key)
            if source is None:
                continue
            entries = tree.files_under(source)
            if entries and not all(posixpath.basename(e.path) in PLACEHOLDERS for e in entries):
                for e in entries:
                    c.add(e.path, EXEC_MODE if e.executable else FILE_MODE, key)
            else:
                c.data.append(DataDir(name, i, key, posixpath.relpath(source, project.project_dir),
                                      svc.raw_volumes[i]))
        for kind, used, names in (("secrets", secrets_used, svc.secrets), ("configs", configs_used, svc.configs)):
            for source in names:
                used.setdefault(source, f"{svc.key}.{kind}")
    for kind, used, defined in (("secrets", secrets_used, project.secrets), ("configs", configs_used, project.configs)):
        for source, by in used.items():
            _top_level(c, kind, source, by, defined.get(source))
    return ReleaseInputs(tuple(RepoFile(p, m, tuple(k)) for p, (m, k) in sorted(c.files.items())),
                         tuple(c.data), tuple(c.problems))


def _top_level(c: _Collector, kind: str, source: str, by: str, item: TopLevel | None) -> None:
    if item is None:
        c.problem(by, f"{source!r} is not defined under top-level `{kind}:`. Define it, e.g. "
                  f"`{kind}: {{{source}: {{file: ./{source}.txt}}}}`.")
        return
    if item.file is None:
        return  # environment, content, external: nothing of the repository
    key = f"{kind}.{source}.file"
    if posixpath.isabs(item.file) or item.file.startswith("~"):
        return
    path = c.resolve(item.file, key)
    if path is None:
        return
    if not c.tree.is_file(path):
        fix = (f"or take it from a variable: `{kind}: {{{source}: {{environment: NAME}}}}` with NAME in "
               "shipline.yml `secrets:`") if kind == "secrets" else "or write it inline with `content:`"
        c.problem(key, f"{item.file} is not in {c.tree.label}. Commit it, {fix}.")
        return
    c.add(path, SECRET_MODE if kind == "secrets" else FILE_MODE, key)
