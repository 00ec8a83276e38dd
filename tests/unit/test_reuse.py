from datetime import UTC, datetime
from pathlib import Path

import pytest

from shipline.errors import ConfigError, ShiplineError
from shipline.plan import Trigger, compile_plan
from shipline.project import load_project
from shipline.reuse import check_cache_builder, decide, engine_platform, pushed_digest, repository

from .fakes import FakeExecutor
from .projects import SHIPLINE, write_project

TRIGGER = Trigger(ref="main", sha="0" * 40, short_sha="0000000")


def answering(argv_start: list[str], code: int, out: str) -> FakeExecutor:
    return FakeExecutor([lambda a: (code, out) if a[:len(argv_start)] == argv_start else None])


def test_engine_platform_is_asked_from_the_engine() -> None:
    assert engine_platform(answering(["docker", "version"], 0, "linux/arm64\n")) == "linux/arm64"
    with pytest.raises(ShiplineError, match="cannot ask the Docker engine"):
        engine_platform(answering(["docker", "version"], 1, "Cannot connect to the Docker daemon"))


def test_repository_is_the_path_under_the_registry() -> None:
    assert repository("127.0.0.1:5000/shop/backend:abc1234") == "shop/backend"
    assert repository("127.0.0.1:5000/shop/backend") == "shop/backend"  # the port is no tag
    assert repository("ghcr.io/acme/shop/web") == "acme/shop/web"


@pytest.mark.parametrize(("driver", "refused"), [("docker", True), ("docker-container", False)])
def test_registry_cache_needs_a_builder_that_can_export_it(tmp_path: Path, driver: str, refused: bool) -> None:
    project = load_project(write_project(tmp_path, SHIPLINE + "build_cache: {type: registry}\n"), env={})
    plan = compile_plan(project, TRIGGER, datetime(2026, 1, 1, tzinfo=UTC))
    builder = answering(["docker", "buildx", "inspect"], 0, f"Name:   default\nDriver: {driver}\n")
    if refused:
        with pytest.raises(ConfigError, match=r"build_cache\.type: registry .* \(driver `docker`\)"):
            check_cache_builder(builder, plan)
    else:
        check_cache_builder(builder, plan)
    inline = compile_plan(project, TRIGGER, datetime(2026, 1, 1, tzinfo=UTC), build_cache="inline")
    check_cache_builder(builder, inline)  # inline works with any builder: not even asked
    assert len(builder.commands) == 1


class StubRegistry:
    """Answers `exists` from a set of (repository, tag); records what was asked."""

    def __init__(self, present: set[tuple[str, str]], fail: bool = False) -> None:
        self.present, self.fail, self.asked = present, fail, []

    def exists(self, repo: str, tag: str) -> bool:
        self.asked.append((repo, tag))
        if self.fail:
            raise ShiplineError("registry 127.0.0.1:5000: connection refused")
        return (repo, tag) in self.present


def test_decide_asks_the_registry_for_each_services_inputs_tag(tmp_path: Path) -> None:
    from .test_inputs import git

    path = write_project(tmp_path)
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "one")
    project = load_project(path, env={})
    trigger = Trigger(ref="main", sha=git(tmp_path, "rev-parse", "HEAD"), short_sha="abc1234")
    first = decide(project, trigger, StubRegistry(set()), "linux/amd64")  # type: ignore[arg-type]
    frontend_tag = first["frontend"].inputs_tag
    stub = StubRegistry({("shop/frontend", frontend_tag)})
    sources = decide(project, trigger, stub, "linux/amd64")  # type: ignore[arg-type]
    assert sorted(stub.asked) == sorted([("shop/backend", first["backend"].inputs_tag), ("shop/frontend", frontend_tag)])
    assert sources["frontend"].reuse and not sources["backend"].reuse
    failing = decide(project, trigger, StubRegistry(set(), fail=True), "linux/amd64")  # type: ignore[arg-type]
    assert not failing["frontend"].reuse and "connection refused" in failing["frontend"].reason
    rebuild = StubRegistry({("shop/frontend", frontend_tag)})
    assert not decide(project, trigger, rebuild, "linux/amd64", rebuild=True)["frontend"].reuse  # type: ignore[arg-type]
    assert rebuild.asked == []  # --rebuild asks nothing


def test_pushed_digest_is_read_from_docker_push() -> None:
    out = ("The push refers to repository [127.0.0.1:5000/shop/backend]\n5f70bf18a086: Layer already exists\n"
           f"abc1234: digest: sha256:{'ab' * 32} size: 1782\n")
    assert pushed_digest(out) == f"sha256:{'ab' * 32}"
    assert pushed_digest("error: denied") is None
