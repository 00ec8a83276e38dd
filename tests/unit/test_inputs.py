import os
import subprocess
from pathlib import Path

import pytest

from shipline.errors import ConfigError
from shipline.inputs import (
    BuildDefinition,
    Entry,
    build_inputs,
    commit_inputs,
    context_files,
    definitions,
    ignore_patterns,
    parse_ls_tree,
)
from shipline.project import load_project

from .projects import write_project

# (patterns, path, excluded): Docker's documented .dockerignore examples and the classic gitignore differences.
SEMANTICS = [
    (["*/temp*"], "somedir/temporary.txt", True),
    (["*/temp*"], "somedir/temp", True),
    (["*/temp*"], "temp.txt", False),  # `*` is one path segment: nothing at the root
    (["*/*/temp*"], "somedir/subdir/temporary.txt", True),
    (["*/*/temp*"], "somedir/temporary.txt", False),
    (["temp?"], "tempa", True),
    (["temp?"], "tempab", False),
    (["*.pyc"], "a.pyc", True),
    (["*.pyc"], "app/a.pyc", False),  # unlike .gitignore, a pattern without `**` is anchored at the root
    (["**/*.pyc"], "app/deep/a.pyc", True),
    (["**/*.pyc"], "a.pyc", True),  # `**/` matches zero directories too
    (["__pycache__/"], "__pycache__/x.pyc", True),  # a trailing slash is dropped; a directory excludes its files
    (["__pycache__/"], "app/__pycache__/x.pyc", False),
    (["/docs"], "docs/index.md", True),  # a leading slash is dropped
    (["docs", "!docs/keep.md"], "docs/keep.md", False),  # `!` re-includes inside an excluded directory
    (["docs", "!docs/keep.md"], "docs/other.md", True),
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "CHANGELOG.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),  # the last matching pattern wins
    (["*.md", "!README*.md", "README-secret.md"], "README-public.md", False),
    (["*.PYC"], "a.pyc", False),  # case matters on Linux
    (["# comment.txt"], "# comment.txt", False),  # a line starting with # is a comment
    (["  spaced.txt  "], "spaced.txt", True),  # surrounding blanks are trimmed
    (["a/../b"], "b/file", True),  # patterns are cleaned like filepath.Clean
    (["."], "file", False),  # "for historical reasons, the pattern . is ignored"
    (["\\*.txt"], "*.txt", True),  # backslash escapes
    (["\\*.txt"], "a.txt", False),
    (["**"], "anything/at/all", True),
    (["**", "!src/**"], "src/main.py", False),
]


@pytest.mark.parametrize(("patterns", "path", "excluded"), SEMANTICS)
def test_dockerignore_semantics(patterns: list[str], path: str, excluded: bool) -> None:
    tree = {f"ctx/{path}": Entry("100644", "0" * 40)}
    kept = [rel for rel, _ in context_files(tree, "ctx", patterns)]
    assert (kept == []) == excluded


def test_ignore_file_bom_and_crlf_are_read_like_buildkit() -> None:
    assert ignore_patterns("\ufeff*.log\r\n!keep.log\r\n") == ["*.log", "!keep.log"]


def test_a_broken_pattern_is_a_config_error_naming_the_file() -> None:
    with pytest.raises(ConfigError, match=r"backend/\.dockerignore: .*pattern"):
        context_files({"backend/a": Entry("100644", "0" * 40)}, "backend", ["[unclosed"], source="backend/.dockerignore")


def test_parse_ls_tree_reads_modes_ids_and_odd_paths() -> None:
    out = b"100644 blob aaa\tREADME.md\x00100755 blob bbb\tbin/run me\x00120000 blob ccc\tlink\x00160000 commit ddd\tsub\x00"
    assert parse_ls_tree(out) == {"README.md": Entry("100644", "aaa"), "bin/run me": Entry("100755", "bbb"),
                                  "link": Entry("120000", "ccc"), "sub": Entry("160000", "ddd")}


BACKEND = BuildDefinition("backend", "backend", "backend/Dockerfile", None, {"GIT_SHA": "{short_sha}"})


def tree_of(**files: str) -> dict[str, Entry]:
    return {path.replace("__", "/").replace("_dot_", "."): Entry("100644", oid) for path, oid in files.items()}


BASE = tree_of(backend__Dockerfile="d1", backend__app_dot_py="a1", backend___dot_dockerignore="i1", README_dot_md="r1")


def digest(tree: dict[str, Entry], definition: BuildDefinition = BACKEND, ignore: str | None = "*.log\n",
           platform: str = "linux/amd64", app: str = "shop") -> str:
    return build_inputs(definition, tree, ignore, app, platform).digest


def test_pure_hash_depends_on_every_input_and_nothing_else() -> None:
    base = digest(BASE)
    assert digest({**BASE, "README.md": Entry("100644", "r2")}) == base
    assert digest({**BASE, "backend/debug.log": Entry("100644", "l1")}) == base  # ignored
    assert digest({**BASE, "backend/app.py": Entry("100644", "a2")}) != base
    assert digest({**BASE, "backend/app.py": Entry("100755", "a1")}) != base  # chmod +x changes the image
    assert digest({**BASE, "backend/Dockerfile": Entry("100644", "d2")}) != base
    assert digest(BASE, platform="linux/arm64") != base
    assert digest(BASE, BuildDefinition("backend", "backend", "backend/Dockerfile", "prod", BACKEND.args)) != base
    assert digest(BASE, BuildDefinition("backend", "backend", "backend/Dockerfile", None, {"GIT_SHA": "x"})) != base
    tested = BuildDefinition("backend", "backend", "backend/Dockerfile", None, BACKEND.args, ({"run": "pytest"},))
    assert digest(BASE, tested) != base  # a changed test step is run again, on a fresh build


def test_commit_placeholders_are_hashed_as_written_and_app_expanded() -> None:
    with_app = BuildDefinition("backend", "backend", "backend/Dockerfile", None, {"NAME": "{app}"})
    assert digest(BASE, with_app, app="shop") != digest(BASE, with_app, app="blog")
    assert build_inputs(BACKEND, BASE, None, "shop", "linux/amd64").files == 3  # Dockerfile, app.py, .dockerignore


def test_dockerfile_outside_the_context_counts_and_its_own_ignore_file_wins() -> None:
    outside = BuildDefinition("backend", "backend", "docker/backend.Dockerfile", None, {})
    tree = {**BASE, "docker/backend.Dockerfile": Entry("100644", "x1")}
    assert digest(tree, outside) != digest({**tree, "docker/backend.Dockerfile": Entry("100644", "x2")}, outside)
    with_own = {**tree, "docker/backend.Dockerfile.dockerignore": Entry("100644", "i2")}
    inputs = build_inputs(outside, with_own, "app.py\n", "shop", "linux/amd64")
    assert inputs.ignore_file == "docker/backend.Dockerfile.dockerignore"
    assert inputs.files == 2  # app.py excluded by the Dockerfile's own ignore file


def test_missing_dockerfile_and_empty_context_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"build\.backend\.dockerfile: backend/Dockerfile is not in the commit"):
        build_inputs(BACKEND, tree_of(backend__app_dot_py="a1"), None, "shop", "linux/amd64")
    outside = BuildDefinition("backend", "generated", "backend/Dockerfile", None, {})
    with pytest.raises(ConfigError, match=r"build\.backend\.context: generated is not in the commit"):
        build_inputs(outside, BASE, None, "shop", "linux/amd64")
    everything_ignored = {**BASE, "backend/.dockerignore": Entry("100644", "i9")}
    assert build_inputs(BACKEND, everything_ignored, "**\n", "shop", "linux/amd64").files == 0  # Docker builds it too


# -- from a real git repository: the commit, never the working tree ----------------------------------------


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    write_project(tmp_path)
    (tmp_path / "backend" / "app.py").write_text("print('v1')\n")
    (tmp_path / "backend" / ".dockerignore").write_text("*.log\nnotes/\n")
    (tmp_path / "frontend" / "index.html").write_text("<h1>v1</h1>\n")
    (tmp_path / "README.md").write_text("# shop\n")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "one")
    return tmp_path


def hashes(repo: Path) -> dict[str, str]:
    project = load_project(repo / "shipline.yml", env={})
    sha = git(repo, "rev-parse", "HEAD")
    return {svc: i.digest for svc, i in commit_inputs(repo, sha, definitions(project), "shop", "linux/amd64").items()}


def commit(repo: Path, path: str, text: str) -> dict[str, str]:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"change {path}")
    return hashes(repo)


def test_readme_outside_every_context_changes_no_hash(repo: Path) -> None:
    before = hashes(repo)
    assert commit(repo, "README.md", "# shop, documented\n") == before


def test_ignored_file_changes_no_hash(repo: Path) -> None:
    before = hashes(repo)
    assert commit(repo, "backend/debug.log", "noise\n") == before
    assert commit(repo, "backend/notes/todo.txt", "later\n") == before


def test_file_in_context_changes_only_its_service_hash(repo: Path) -> None:
    before = hashes(repo)
    after = commit(repo, "backend/app.py", "print('v2')\n")
    assert after["backend"] != before["backend"] and after["frontend"] == before["frontend"]


def test_uncommitted_changes_are_not_hashed(repo: Path) -> None:
    before = hashes(repo)
    (repo / "backend" / "app.py").write_text("print('dirty')\n")
    (repo / "backend" / "untracked.py").write_text("x = 1\n")
    assert hashes(repo) == before


def test_service_test_steps_are_inputs_of_their_image_only(repo: Path) -> None:
    before = hashes(repo)
    config = (repo / "shipline.yml").read_text().replace("run: python -m unittest}", "run: python -m unittest -v}")
    after = commit(repo, "shipline.yml", config)
    assert after["backend"] != before["backend"] and after["frontend"] == before["frontend"]


# -- examples/monorepo: five services, one context, one ignore file per Dockerfile ---------------------------

MONOREPO = Path(__file__).resolve().parents[2] / "examples" / "monorepo"


@pytest.fixture
def monorepo(tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(MONOREPO, tmp_path / "mono")
    repo = tmp_path / "mono"
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "one")
    return repo


def monorepo_hashes(repo: Path) -> dict[str, str]:
    project = load_project(repo / "shipline.yml", env={"SHIPLINE_HOST_KEY": ""}, lenient=True)
    sha = git(repo, "rev-parse", "HEAD")
    return {svc: i.digest for svc, i in commit_inputs(repo, sha, definitions(project), "monorepo", "linux/amd64").items()}


@pytest.mark.parametrize(("path", "changed"), [
    ("services/web/index.html", {"web"}),
    ("libs/brand/name.txt", {"api", "worker"}),  # the shared library: the two services that copy it
    ("README.md", set()),
    ("services/docs/Dockerfile.dockerignore", {"docs"}),  # its ignore file is in what it lets in
])
def test_monorepo_changes_only_the_services_that_see_the_file(monorepo: Path, path: str, changed: set[str]) -> None:
    before = monorepo_hashes(monorepo)
    with (monorepo / path).open("a") as f:
        f.write("\n# changed\n")
    git(monorepo, "commit", "-q", "-am", f"change {path}")
    after = monorepo_hashes(monorepo)
    assert {svc for svc in before if before[svc] != after[svc]} == changed
