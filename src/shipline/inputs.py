"""Build inputs: what decides a service's image, hashed from the commit (git objects, never the work tree).

A service's inputs are its build context as committed, filtered by `.dockerignore` exactly as BuildKit filters
it, its Dockerfile (wherever it lives), the target, the build args, the platform and the test steps that gate
its publishing. Two commits with the same inputs give the same image, so the second one reuses the first's
instead of rebuilding it (`reuse.py`).

The commit placeholders (`{sha}`, `{short_sha}`, `{ref}`) are hashed as written, not expanded: like the image's
revision label, they record which commit built the image, and a reused image keeps saying so truthfully.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, ShiplineError

if TYPE_CHECKING:
    from .project import Project

FORMAT = 1  # bump when what is hashed changes: every image is then rebuilt once
INPUTS_LABEL = "dev.shipline.inputs"
TAG_PREFIX = "inputs-"
PROVENANCE = re.compile(r"\{(sha|short_sha|ref)\}")  # placeholders that name the commit building the image
_BOM = "\ufeff"


@dataclass(frozen=True)
class Entry:
    """One blob (or gitlink) of a commit's tree: its git mode and object id (a hash of its content)."""

    mode: str
    oid: str


Tree = Mapping[str, Entry]  # repository-relative path -> entry; files only (git has no empty directories)


@dataclass(frozen=True)
class BuildInputs:
    """The hash of one service's build inputs, and what it covered (for the plan and the build log)."""

    service: str
    digest: str  # sha256, hex
    files: int  # context files hashed (after .dockerignore)
    ignore_file: str | None  # the ignore file BuildKit reads for this build, repository-relative

    @property
    def tag(self) -> str:
        """The registry tag that marks an image built (and tested) from exactly these inputs."""
        return f"{TAG_PREFIX}{self.digest}"


@dataclass(frozen=True)
class BuildDefinition:
    """What shipline.yml and the commit say about one build, with paths relative to the repository root."""

    service: str
    context: str  # "" for the repository root
    dockerfile: str
    target: str | None
    args: Mapping[str, str]  # as configured: placeholders not expanded
    tests: Sequence[Mapping[str, object]] = ()  # the test steps run in this service's image


# -- reading the commit ----------------------------------------------------------------------------------


def read_tree(repo: Path, sha: str) -> dict[str, Entry]:
    """Every file of the commit with its mode and object id, in one `git ls-tree`."""
    proc = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "-z", "--full-tree", sha], capture_output=True)
    if proc.returncode != 0:
        raise ShiplineError(f"git ls-tree {sha} failed in {repo}: {proc.stderr.decode(errors='replace').strip()}")
    return parse_ls_tree(proc.stdout)


def parse_ls_tree(output: bytes) -> dict[str, Entry]:
    """`git ls-tree -r -z` records: `<mode> <type> <oid>\\t<path>\\0`."""
    tree: dict[str, Entry] = {}
    for record in output.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, _kind, oid = meta.decode().split(" ")
        tree[path.decode("utf-8", "surrogateescape")] = Entry(mode, oid)
    return tree


def read_blobs(repo: Path, oids: Iterable[str]) -> dict[str, bytes]:
    """Contents of blobs, in one `git cat-file --batch`."""
    wanted = list(dict.fromkeys(oids))
    if not wanted:
        return {}
    proc = subprocess.run(["git", "-C", str(repo), "cat-file", "--batch"], input="".join(f"{o}\n" for o in wanted).encode(),
                          capture_output=True)
    if proc.returncode != 0:
        raise ShiplineError(f"git cat-file failed in {repo}: {proc.stderr.decode(errors='replace').strip()}")
    blobs: dict[str, bytes] = {}
    out, pos = proc.stdout, 0
    for oid in wanted:
        end = out.index(b"\n", pos)
        header = out[pos:end].decode().split(" ")
        if header[-1] == "missing":
            raise ShiplineError(f"git object {oid} is missing in {repo}")
        size = int(header[2])
        blobs[oid] = out[end + 1:end + 1 + size]
        pos = end + 1 + size + 1
    return blobs


# -- .dockerignore ---------------------------------------------------------------------------------------


def ignore_patterns(text: str) -> list[str]:
    """The lines of an ignore file as BuildKit reads them (BOM dropped); comments and blanks are left to the
    matcher, which skips them the way moby's reader does."""
    return text.removeprefix(_BOM).splitlines()


def ignore_file(tree: Tree, context: str, dockerfile: str) -> str | None:
    """The ignore file a build uses: `<Dockerfile>.dockerignore` beside the Dockerfile wins over the context's."""
    for candidate in (f"{dockerfile}.dockerignore", join(context, ".dockerignore")):
        if candidate in tree:
            return candidate
    return None


def context_files(tree: Tree, context: str, patterns: Sequence[str], *, source: str = ".dockerignore") -> list[tuple[str, Entry]]:
    """The files BuildKit sends for `context` (context-relative paths, sorted), after the ignore patterns.

    The matching is moby/patternmatcher's, ported by e2b-dockerfile-utils: a pattern matching a directory
    excludes what is under it, `!` re-includes, the last matching pattern wins, `*` stops at `/`.
    """
    from e2b_dockerfile_utils import PatternMatcher  # imported here: `shipline --help` need not load it

    try:
        matcher = PatternMatcher(list(patterns))
    except ValueError as exc:
        raise ConfigError([f"{source}: {exc}. Fix the pattern (Docker's .dockerignore syntax); `docker build` "
                           "would refuse it too."]) from None
    prefix = f"{context}/" if context else ""
    files = []
    for path, entry in tree.items():
        if path.startswith(prefix):
            rel = path[len(prefix):]
            if not matcher.matches(rel):
                files.append((rel, entry))
    return sorted(files)


# -- the hash --------------------------------------------------------------------------------------------


def join(*parts: str) -> str:
    """A repository-relative path from parts (`""` is the root); `..` is resolved as git paths have none."""
    path = posixpath.normpath("/".join(p for p in parts if p))
    return "" if path == "." else path


def hashed_args(args: Mapping[str, str], app: str) -> dict[str, str]:
    """Build args as hashed: `{app}` expanded, the commit placeholders kept as written (see the module doc)."""
    return {k: v.replace("{app}", app) for k, v in sorted(args.items())}


def digest(document: Mapping[str, object]) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def build_inputs(definition: BuildDefinition, tree: Tree, ignore_text: str | None, app: str, platform: str) -> BuildInputs:
    """Hash one service's inputs from a commit's tree (pure: the caller reads the tree and the ignore file)."""
    d = definition
    dockerfile = tree.get(d.dockerfile)
    if dockerfile is None:
        raise ConfigError([f"build.{d.service}.dockerfile: {d.dockerfile} is not in the commit. Commit the Dockerfile "
                           "(shipline builds from the commit, not from the working tree) or fix its path."])
    prefix = f"{d.context}/" if d.context else ""
    if not any(path.startswith(prefix) for path in tree):
        raise ConfigError([f"build.{d.service}.context: {d.context} is not in the commit. Commit the build context "
                           "(shipline builds from the commit, not from the working tree) or fix `context:`."])
    ignore = ignore_file(tree, d.context, d.dockerfile)
    files = context_files(tree, d.context, ignore_patterns(ignore_text or "") if ignore else [],
                          source=ignore or ".dockerignore")
    document = {
        "format": FORMAT,
        "platform": platform,
        "dockerfile": dockerfile.oid,
        "target": d.target,
        "args": hashed_args(d.args, app),
        "tests": list(d.tests),
        "context": [[rel, e.mode, e.oid] for rel, e in files],
    }
    return BuildInputs(d.service, digest(document), len(files), ignore)


def commit_inputs(repo: Path, sha: str, definitions: Sequence[BuildDefinition], app: str, platform: str) -> dict[str, BuildInputs]:
    """Every service's inputs at a commit: one `git ls-tree` and one `git cat-file` for all of them."""
    tree = read_tree(repo, sha)
    ignores = {d.service: ignore_file(tree, d.context, d.dockerfile) for d in definitions}
    blobs = read_blobs(repo, (tree[p].oid for p in ignores.values() if p))
    result = {}
    for d in definitions:
        path = ignores[d.service]
        text = blobs[tree[path].oid].decode("utf-8", "replace") if path else None
        result[d.service] = build_inputs(d, tree, text, app, platform)
    return result


def definitions(project: Project) -> list[BuildDefinition]:
    """The builds of shipline.yml with repository-relative paths, and the test steps each image must pass."""
    cfg = project.config
    result = []
    for service, spec in cfg.build.items():
        context = join(project.root_in_repo, spec.context)
        tests = [{"name": t.name, "run": t.run, "env": dict(t.env), "workdir": t.workdir}
                 for t in cfg.test if t.service == service]
        result.append(BuildDefinition(service, context, join(context, spec.dockerfile or "Dockerfile"), spec.target,
                                      dict(spec.args), tests))
    return result
