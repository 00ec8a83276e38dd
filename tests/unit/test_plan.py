from datetime import UTC, datetime
from pathlib import Path

from shipline.plan import Trigger, compile_plan, image_sources, secrets_in_build_args
from shipline.project import load_project
from shipline.secrets import Secret

from .projects import SHIPLINE, write_project

SHA = "0123456789abcdef0123456789abcdef01234567"
TRIGGER = Trigger(ref="refs/heads/main", sha=SHA, short_sha="0123456", source="cli", actor="ann",
                  source_url="https://example.test/shop.git")
WHEN = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def plan_for(tmp_path: Path):
    return compile_plan(load_project(write_project(tmp_path), env={}), TRIGGER, WHEN)


def test_images_are_tagged_with_the_short_sha(tmp_path: Path) -> None:
    plan = plan_for(tmp_path)
    assert plan.images == {"backend": "127.0.0.1:5000/shop/backend:0123456",
                           "frontend": "127.0.0.1:5000/shop/frontend:0123456"}


def test_builds_carry_oci_labels_and_expanded_args(tmp_path: Path) -> None:
    build = plan_for(tmp_path).builds[0]
    argv = list(build.argv)
    labels = {argv[i + 1] for i, a in enumerate(argv) if a == "--label"}
    assert labels == {
        f"org.opencontainers.image.revision={SHA}",
        "org.opencontainers.image.source=https://example.test/shop.git",
        "org.opencontainers.image.created=2026-11-26T12:00:00+00:00",
        "org.opencontainers.image.title=backend",
        "org.opencontainers.image.version=0123456",
    }
    assert "GIT_SHA=0123456" in argv and argv[-1] == "backend"


def test_service_test_runs_in_the_built_image_and_image_test_mounts_the_checkout(tmp_path: Path) -> None:
    unit, lint = plan_for(tmp_path).tests
    assert unit.argv[-4:] == ("127.0.0.1:5000/shop/backend:0123456", "sh", "-c", "python -m unittest")
    assert "{workspace}:/workspace" in lint.argv and lint.argv[-4:] == ("python:3.11-slim", "ruff", "check", ".")


def test_rollout_order_follows_dependencies_with_migration_before_backend(tmp_path: Path) -> None:
    rollout = plan_for(tmp_path).deploy.targets[0].rollout
    assert [r.service for r in rollout] == ["db", "backend", "frontend", "proxy"]
    backend = rollout[1]
    assert backend.built and backend.health_timeout == 30
    assert backend.migrate_before is not None and backend.migrate_before[-3:] == ("sh", "-c", "python -m app.migrate")
    assert not rollout[0].built and rollout[0].migrate_before is None


def test_plan_renders_every_stage(tmp_path: Path) -> None:
    text = plan_for(tmp_path).render()
    for word in ("checkout", "build", "test", "publish", "deploy", "deploy@127.0.0.1:2222",
                 "docker push 127.0.0.1:5000/shop/frontend:0123456", "migrate"):
        assert word in text


def test_image_sources_say_reuse_or_build_and_why() -> None:
    digests = {"backend": "a" * 64, "frontend": "b" * 64, "worker": "c" * 64}
    found = {"backend": True, "frontend": False, "worker": "registry 127.0.0.1:5000: connection refused"}
    sources = image_sources(digests, found)
    assert [s.reuse for s in sources.values()] == [True, False, False]
    assert "same build inputs" in sources["backend"].reason and "aaaaaaaaaaaa" in sources["backend"].reason
    assert "no image with these build inputs" in sources["frontend"].reason
    assert "connection refused" in sources["worker"].reason
    assert not any(s.reuse for s in image_sources(digests, found, rebuild=True).values())
    assert image_sources(digests, found, rebuild=True)["backend"].reason == "--rebuild"


def test_a_reused_image_is_neither_built_tested_nor_pushed_but_tagged(tmp_path: Path) -> None:
    project = load_project(write_project(tmp_path), env={})
    sources = image_sources({"backend": "a" * 64, "frontend": "b" * 64}, {"backend": True, "frontend": False})
    plan = compile_plan(project, TRIGGER, WHEN, sources)
    assert [b.service for b in plan.builds] == ["frontend"]
    assert [t.name for t in plan.tests] == ["lint"]  # `unit` runs in the backend image, which passed it when built
    assert plan.pushes == (("docker", "push", "127.0.0.1:5000/shop/frontend:0123456"),)
    assert plan.images["backend"] == "127.0.0.1:5000/shop/backend:0123456"  # still deployed under this commit's tag
    assert f"dev.shipline.inputs={'b' * 64}" in plan.builds[0].argv
    text = plan.render()
    assert "backend: reuse: an image with the same build inputs is in the registry (inputs-aaaaaaaaaaaa)" in text
    assert "frontend: build: no image with these build inputs in the registry" in text
    assert f"tag 127.0.0.1:5000/shop/frontend:inputs-{'b' * 64} in the registry" in text


def test_without_sources_every_image_is_built(tmp_path: Path) -> None:
    plan = plan_for(tmp_path)
    assert [b.service for b in plan.builds] == ["backend", "frontend"] and plan.sources == ()
    assert all("dev.shipline.inputs" not in " ".join(b.argv) for b in plan.builds)


def test_build_cache_from_config_or_overridden(tmp_path: Path) -> None:
    path = write_project(tmp_path, SHIPLINE + "build_cache: {type: inline, tag: cache}\n")
    project = load_project(path, env={})
    plan = compile_plan(project, TRIGGER, WHEN)
    assert plan.build_cache == "inline" and plan.cache_refs["backend"] == "127.0.0.1:5000/shop/backend:cache"
    assert "type=inline" in plan.builds[0].argv
    assert "tag 127.0.0.1:5000/shop/backend:cache in the registry (the next build's cache)" in plan.render()
    overridden = compile_plan(project, TRIGGER, WHEN, build_cache="registry")
    assert "type=registry,ref=127.0.0.1:5000/shop/frontend:cache,mode=max" in overridden.builds[1].argv
    assert "needs a docker-container builder" in overridden.render()
    assert "--cache-to" not in compile_plan(project, TRIGGER, WHEN, build_cache="off").builds[0].argv


def test_the_plan_carries_every_runtime_setting(tmp_path: Path) -> None:
    d = plan_for(tmp_path).deploy
    assert (d.app, d.keep_releases, d.lock_wait, d.lock_ttl, d.secrets) == ("shop", 5, 120, 1800, ("POSTGRES_PASSWORD",))
    assert d.secrets_file == str(tmp_path / ".shipline" / "secrets")
    assert d.targets[0].layout.ledger == ".shipline/shop/ledger.jsonl"


def test_plan_names_each_strategy_why_the_files_and_what_is_not_deployed(tmp_path: Path) -> None:
    compose = COMPOSE_WITH_FILES
    (tmp_path / "nginx.conf").write_text("events {}\n")
    project = load_project(write_project(tmp_path, compose=compose), env={})
    text = compile_plan(project, TRIGGER, WHEN).render()
    assert "       nginx.conf (mode 0644)" in text and "       docker-compose.prod.yml (mode 0644)" in text
    assert "     data: services.db.volumes[1] -> ~/.shipline/shop/data/pgdata (kept across releases)" in text
    assert "     seed: not deployed: profile seed not enabled (deploy.profiles)" in text
    assert "     migrate: job: run to completion" in text
    assert "       why: backend waits for it to complete (`service_completed_successfully`)" in text
    assert "       why: `container_name: shop-proxy` allows one container" in text


COMPOSE_WITH_FILES = """\
services:
  proxy:
    image: nginx
    container_name: shop-proxy
    volumes: [./nginx.conf:/etc/nginx/nginx.conf:ro]
  db:
    image: postgres:15
    volumes: [pgdata:/var/lib/postgresql/data, ./pgdata:/backups]
  migrate:
    image: shop/migrate
  backend:
    build: ./backend
    depends_on:
      db: {condition: service_healthy}
      migrate: {condition: service_completed_successfully}
  frontend:
    build: ./frontend
  seed:
    image: shop/seed
    profiles: [seed]
volumes:
  pgdata: {}
"""


def test_build_secrets_are_named_in_argv_never_valued(tmp_path: Path) -> None:
    shipline = SHIPLINE.replace("frontend: {context: frontend}", "frontend: {context: frontend, secrets: [NPM_TOKEN]}")
    plan = compile_plan(load_project(write_project(tmp_path, shipline), env={}), TRIGGER, WHEN)
    frontend = next(b for b in plan.builds if b.service == "frontend")
    assert frontend.secrets == ("NPM_TOKEN",)
    assert frontend.argv[-3:] == ("--secret", "id=NPM_TOKEN,env=NPM_TOKEN", "frontend")


def test_a_secret_in_a_build_arg_is_refused_with_the_fix(tmp_path: Path) -> None:
    shipline = SHIPLINE.replace('args: {GIT_SHA: "{short_sha}"}', 'args: {TOKEN: "x-${NPM_TOKEN}"}')
    plan = compile_plan(load_project(write_project(tmp_path, shipline), env={"NPM_TOKEN": "npm-secret"}), TRIGGER, WHEN)
    problems = secrets_in_build_args(plan.builds, {"NPM_TOKEN": Secret("NPM_TOKEN", "npm-secret")})
    assert len(problems) == 1
    assert problems[0].startswith("build.backend.args.TOKEN: holds the value of the secret NPM_TOKEN")
    assert "build.backend.secrets: [NPM_TOKEN]" in problems[0] and "--mount=type=secret,id=NPM_TOKEN" in problems[0]
    assert secrets_in_build_args(plan.builds, {"OTHER": Secret("OTHER", "unrelated")}) == []
