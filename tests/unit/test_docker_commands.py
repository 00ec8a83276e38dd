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


def test_compose_up_touches_one_service_only() -> None:
    argv = dc.compose_up("shop", ["r/1/docker-compose.yml", "r/1/shipline.override.yml"], "r/1/.env", "backend")
    assert argv == ["docker", "compose", "--project-name", "shop", "--file", "r/1/docker-compose.yml",
                    "--file", "r/1/shipline.override.yml", "--env-file", "r/1/.env",
                    "up", "--detach", "--no-deps", "--no-build", "backend"]


def test_run_with_mounts_env_and_workdir() -> None:
    argv = dc.run("python:3.11-slim", ["sh", "-c", "ruff ."], name="t1", env={"CI": "1"},
                  mounts={"/tmp/ws": "/workspace"}, workdir="/workspace")
    assert argv == ["docker", "run", "--rm", "--name", "t1", "--env", "CI=1", "--volume", "/tmp/ws:/workspace",
                    "--workdir", "/workspace", "python:3.11-slim", "sh", "-c", "ruff ."]


def test_shell_command_string_and_list() -> None:
    assert dc.shell_command("a && b") == ["sh", "-c", "a && b"]
    assert dc.shell_command(["python", "-m", "x"]) == ["python", "-m", "x"]
