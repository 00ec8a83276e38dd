from shipline import docker_commands as dc


def test_build_passes_every_option_as_its_own_argument() -> None:
    argv = dc.build("r/app/backend:abc1234", "backend", dockerfile="backend/Dockerfile.prod", target="prod",
                    args={"GIT_SHA": "abc1234"}, labels={"org.opencontainers.image.revision": "f" * 40})
    assert argv == ["docker", "buildx", "build", "--progress=plain", "--load", "--tag", "r/app/backend:abc1234",
                    "--file", "backend/Dockerfile.prod", "--target", "prod", "--build-arg", "GIT_SHA=abc1234",
                    "--label", f"org.opencontainers.image.revision={'f' * 40}", "backend"]


def test_login_reads_the_password_from_stdin() -> None:
    argv = dc.login("ghcr.io", "bot")
    assert "--password-stdin" in argv and argv[-1] == "ghcr.io"
    assert not any(a.startswith("--password=") for a in argv)


def test_compose_binds_project_files_and_env_file() -> None:
    assert dc.compose("shop", ["r/1/docker-compose.yml", "r/1/shipline.override.yml"], ["r/1/.env"], "app/data") == [
        "docker", "compose", "--project-name", "shop", "--project-directory", "app/data", "--file",
        "r/1/docker-compose.yml", "--file", "r/1/shipline.override.yml", "--env-file", "r/1/.env"]


def test_compose_up_touches_one_service_only() -> None:
    assert dc.compose_up(["dc"], "backend") == ["dc", "up", "--detach", "--no-deps", "--no-build", "backend"]


def test_compose_up_beside_keeps_old_containers_and_doubles_them() -> None:
    assert dc.compose_up(["dc"], "web", replicas_beside=2) == [
        "dc", "up", "--detach", "--no-deps", "--no-build", "--no-recreate", "--scale", "web=4", "web"]


def test_service_containers_by_compose_labels_running_or_all() -> None:
    labels = ["--filter", "label=com.docker.compose.project=shop", "--filter", "label=com.docker.compose.service=web",
              "--filter", "label=com.docker.compose.oneoff=False"]
    assert dc.service_containers("shop", "web") == [
        "docker", "ps", "--quiet", "--no-trunc", *labels, "--filter", "status=running"]
    assert dc.service_containers("shop", "web", all_states=True) == ["docker", "ps", "--quiet", "--no-trunc", *labels, "--all"]


def test_stop_uses_the_short_flag_every_client_knows() -> None:
    assert dc.stop(["a", "b"], 30) == ["docker", "stop", "-t", "30", "a", "b"]


def test_run_with_mounts_env_and_workdir() -> None:
    argv = dc.run("python:3.11-slim", ["sh", "-c", "ruff ."], name="t1", env={"CI": "1"},
                  mounts={"/tmp/ws": "/workspace"}, workdir="/workspace")
    assert argv == ["docker", "run", "--rm", "--name", "t1", "--env", "CI=1", "--volume", "/tmp/ws:/workspace",
                    "--workdir", "/workspace", "python:3.11-slim", "sh", "-c", "ruff ."]


def test_shell_command_string_and_list() -> None:
    assert dc.shell_command("a && b") == ["sh", "-c", "a && b"]
    assert dc.shell_command(["python", "-m", "x"]) == ["python", "-m", "x"]


def test_build_with_a_registry_cache_or_an_inline_one() -> None:
    registry = dc.build("r/a:1", ".", cache=("registry", "r/a:buildcache"))
    assert registry[registry.index("--cache-from") + 1] == "type=registry,ref=r/a:buildcache"
    assert registry[registry.index("--cache-to") + 1] == "type=registry,ref=r/a:buildcache,mode=max"
    inline = dc.build("r/a:1", ".", cache=("inline", "r/a:buildcache"))
    assert inline[inline.index("--cache-from") + 1] == "type=registry,ref=r/a:buildcache"
    assert inline[inline.index("--cache-to") + 1] == "type=inline"
    assert "--cache-to" not in dc.build("r/a:1", ".")
