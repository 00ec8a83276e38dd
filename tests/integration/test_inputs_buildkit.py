"""The files the input hash covers are exactly the files BuildKit sends: checked against the real builder.

Each case commits a context with a tricky ignore file, exports the commit as shipline does, builds
`FROM scratch` + `COPY . /` into a local directory, and compares what landed there with `context_files`.
"""

import subprocess
from pathlib import Path

import pytest

from shipline import gitrepo
from shipline.inputs import context_files, ignore_file, ignore_patterns, read_blobs, read_tree

from .stack import git

pytestmark = pytest.mark.integration

FILES = ["a.pyc", "app/b.pyc", "app/__pycache__/c.pyc", "docs/keep.md", "docs/other.md", "README.md",
         "README-secret.md", "temp", "sub/temporary.txt", "sub/deep/tempx", "Notes.TXT", "notes.txt", "*.txt",
         "space name.txt", "node_modules/x/index.js", "lib/node_modules/y.js", ".env", "keep/.env"]
IGNORE = """\
# a comment, then Docker's documented examples and the places where .dockerignore differs from .gitignore
*.pyc
docs
!docs/keep.md
*.md
!README*.md
README-secret.md
*/temp*
**/node_modules
\\*.txt
*.TXT
/.env
"""


@pytest.mark.parametrize("own_ignore", [False, True], ids=["context-dockerignore", "dockerfile-dockerignore"])
def test_hashed_files_are_the_files_buildkit_copies(tmp_path: Path, own_ignore: bool) -> None:
    repo = tmp_path / "repo"
    ctx = repo / "ctx"
    for name in FILES:
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_text(f"{name}\n")
    (ctx / "run.sh").write_text("#!/bin/sh\n")
    (ctx / "run.sh").chmod(0o755)
    (ctx / "link").symlink_to("README.md")
    dockerfile = "docker/app.Dockerfile" if own_ignore else "ctx/Dockerfile"
    (repo / dockerfile).parent.mkdir(parents=True, exist_ok=True)
    (repo / dockerfile).write_text("FROM scratch\nCOPY . /\n")
    (ctx / ".dockerignore").write_text("app\n" if own_ignore else IGNORE)
    if own_ignore:  # BuildKit prefers <Dockerfile>.dockerignore beside the Dockerfile to the context's
        (repo / f"{dockerfile}.dockerignore").write_text(IGNORE)
    git(repo.parent, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "context")
    sha = git(repo, "rev-parse", "HEAD")

    workspace = tmp_path / "workspace"
    gitrepo.export(repo, sha, workspace)
    out = tmp_path / "out"
    subprocess.run(["docker", "buildx", "build", "--quiet", "--output", f"type=local,dest={out}", "--file",
                    str(workspace / dockerfile), str(workspace / "ctx")], check=True, capture_output=True)
    copied = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() or p.is_symlink())

    tree = read_tree(repo, sha)
    used = ignore_file(tree, "ctx", dockerfile)
    assert used == (f"{dockerfile}.dockerignore" if own_ignore else "ctx/.dockerignore")
    text = read_blobs(repo, [tree[used].oid])[tree[used].oid].decode()
    hashed = [rel for rel, _ in context_files(tree, "ctx", ignore_patterns(text))]
    assert hashed == copied
    assert "docs/keep.md" in hashed and "app/b.pyc" in hashed and "a.pyc" not in hashed  # the case really bites
