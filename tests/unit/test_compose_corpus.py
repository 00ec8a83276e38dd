"""Real Compose files from public projects (tests/data/compose-corpus): `init` then `plan`, without hand edits.

Each entry is a public repository's Compose files at a pinned commit (README.md there names source, commit,
path and licence), with the files they reference. The test lays the entry out as a fresh git repository,
runs `shipline init` as a user would (naming the files with `--compose` only where init asks which to
use), provides the variables init lists (as CI variables would be), commits, and compiles the plan from
the commit. `corpus.yaml` holds what the plan must say, reviewed against each Compose file by hand:
the strategy of every service, the files uploaded, the data directories, build targets and args, the
services not deployed, or the problems a plan must report.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipline.errors import ConfigError, ShiplineError
from shipline.init_cmd import write_starter
from shipline.init_templates import variables_used
from shipline.plan import Trigger, compile_plan
from shipline.project import Project, load_project

CORPUS = Path(__file__).resolve().parents[1] / "data" / "compose-corpus"
SOURCES = {s["name"]: s for s in yaml.safe_load((CORPUS / "sources.yaml").read_text())}
EXPECT: dict[str, dict[str, Any]] = yaml.safe_load((CORPUS / "corpus.yaml").read_text())
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": os.environ["PATH"], "HOME": str(repo)}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout.strip()


def checkout(name: str, root: Path) -> Path:
    """The entry as a fresh repository: its files, and empty stand-ins for the files listed in tree.txt."""
    repo = root / "repo"
    shutil.copytree(CORPUS / name, repo, ignore=shutil.ignore_patterns("tree.txt"))
    for line in (CORPUS / name / "tree.txt").read_text().splitlines():
        path, _, executable = line.partition(" ")
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).touch(mode=0o755 if executable else 0o644)
    git(repo, "init", "-q", "-b", "main")
    return repo


def init_and_plan(name: str, tmp_path: Path) -> tuple[Project | ConfigError, list[str], str]:
    source = SOURCES[name]
    repo = checkout(name, tmp_path)
    project_dir = repo / (os.path.dirname(source["files"][0]) or ".")
    files = [os.path.relpath(repo / f, project_dir) for f in source["files"]]
    if source["init"] == "asks":  # several files could be production: init asks which (here: no terminal)
        with pytest.raises(ShiplineError, match="--compose"):
            write_starter(project_dir)
    if source["init"] == "picks":
        result = write_starter(project_dir)
    else:
        result = write_starter(project_dir, compose=files)
    text = (project_dir / "shipline.yml").read_text()
    assert yaml.safe_load(text)["compose"] == (files[0] if len(files) == 1 else files)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("not a real key\n")
    env = {"HOME": str(home), "SHIPLINE_REGISTRY": "registry.example.com/acme", "SHIPLINE_HOST": "deploy@203.0.113.10",
           "SHIPLINE_HOST_KEY": HOST_KEY}
    env |= {v: f"value-of-{v.lower()}" for v in variables_used(text) if v not in env}
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "shipline init")
    sha = git(repo, "rev-parse", "HEAD")
    saved = os.environ.get("HOME")
    os.environ["HOME"] = str(home)  # `~/.ssh/id_ed25519`, as init writes it
    try:
        project = load_project(project_dir / "shipline.yml", env, commit=sha)
    except ConfigError as exc:
        return exc, list(result.summary), text
    finally:
        os.environ["HOME"] = saved or ""
    plan = compile_plan(project, Trigger(ref="main", sha=sha, short_sha=sha[:7]), datetime(2026, 1, 1, tzinfo=UTC))
    rendered = plan.render()
    assert all(f"     {s}: " in rendered for s in project.rollouts)
    return project, list(result.summary), text


def observed(project: Project, text: str) -> dict[str, Any]:
    config = yaml.safe_load(text)
    return {
        "strategies": {n: r.strategy for n, r in project.rollouts.items()},
        "uploads": {f.path: f"{f.mode:04o}" for f in project.inputs.files},
        "data": [d.path for d in project.inputs.data_dirs],
        "builds": config.get("build") or {},
        "inactive": sorted(project.inactive),
        "secrets": config.get("secrets") or [],
        "env": sorted(config.get("env") or {}),
    }


@pytest.mark.parametrize("name", list(SOURCES))
def test_corpus_entry_inits_and_plans(name: str, tmp_path: Path) -> None:
    project, summary, text = init_and_plan(name, tmp_path)
    expect = EXPECT[name]
    if isinstance(project, ConfigError):
        assert "problems" in expect, project.message
        for words in expect["problems"]:
            assert any(all(w in p for w in words) for p in project.problems), (words, project.problems)
        assert len(project.problems) == expect.get("problem_count", len(project.problems))
        return
    assert "problems" not in expect, "the plan was expected to fail"
    got = observed(project, text)
    if os.environ.get("CORPUS_DRAFT"):
        print(yaml.safe_dump({name: got}, sort_keys=False))
    for key, want in expect.items():
        if key in got:
            assert got[key] == want, f"{name}: {key}"
    why = {n: r.why for n, r in project.rollouts.items()}
    for service, words in expect.get("why", {}).items():
        assert words in why[service], (service, why[service])
    for words in expect.get("summary", []):
        assert any(words in line for line in summary), (words, summary)
    for words in expect.get("notes", []):
        assert any(words in note for note in project.notes), (words, project.notes)


def test_corpus_is_big_enough_and_every_entry_is_documented() -> None:
    readme = (CORPUS / "README.md").read_text()
    assert len(SOURCES) >= 25
    for source in SOURCES.values():
        assert source["name"] in EXPECT
        assert f"`{source['name']}`" in readme and source["commit"] in readme and source["licence"] in readme
