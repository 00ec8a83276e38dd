"""Pure builders of `docker` argv lists. No I/O: the executors run what these return."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def build(
    ref: str,
    context: str,
    *,
    dockerfile: str | None = None,
    target: str | None = None,
    args: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[str]:
    """BuildKit build into the local image store (the `docker` driver sees locally present base images)."""
    argv = ["docker", "buildx", "build", "--progress=plain", "--load", "--tag", ref]
    if dockerfile:
        argv += ["--file", dockerfile]
    if target:
        argv += ["--target", target]
    for key, value in (args or {}).items():
        argv += ["--build-arg", f"{key}={value}"]
    for key, value in (labels or {}).items():
        argv += ["--label", f"{key}={value}"]
    return [*argv, context]


def push(ref: str) -> list[str]:
    return ["docker", "push", ref]


def pull(ref: str) -> list[str]:
    return ["docker", "pull", ref]


def login(registry_host: str, username: str) -> list[str]:
    """The password goes to stdin, never into argv (visible in `ps` and shell history)."""
    return ["docker", "login", "--username", username, "--password-stdin", registry_host]


def run(
    image: str,
    command: Sequence[str],
    *,
    name: str | None = None,
    env: Mapping[str, str] | None = None,
    mounts: Mapping[str, str] | None = None,
    workdir: str | None = None,
) -> list[str]:
    """A one-off container removed when done; `mounts` maps host paths to container paths."""
    argv = ["docker", "run", "--rm"]
    if name:
        argv += ["--name", name]
    for key, value in (env or {}).items():
        argv += ["--env", f"{key}={value}"]
    for host_path, container_path in (mounts or {}).items():
        argv += ["--volume", f"{host_path}:{container_path}"]
    if workdir:
        argv += ["--workdir", workdir]
    return [*argv, image, *command]


def remove_container(name: str) -> list[str]:
    return ["docker", "rm", "--force", name]


def compose(project: str, files: Sequence[str], env_file: str, *args: str) -> list[str]:
    """`docker compose` bound to one project, its files and its env file."""
    argv = ["docker", "compose", "--project-name", project]
    for f in files:
        argv += ["--file", f]
    return [*argv, "--env-file", env_file, *args]


def compose_up(project: str, files: Sequence[str], env_file: str, service: str) -> list[str]:
    """Create or update one service only: Compose leaves an unchanged service (a database) running."""
    return compose(project, files, env_file, "up", "--detach", "--no-deps", "--no-build", service)


def compose_ps_ids(project: str, files: Sequence[str], env_file: str, service: str) -> list[str]:
    return compose(project, files, env_file, "ps", "--quiet", service)


def compose_run(project: str, files: Sequence[str], env_file: str, service: str, command: Sequence[str]) -> list[str]:
    return compose(project, files, env_file, "run", "--rm", "--no-deps", "-T", service, *command)


def inspect_state(container: str) -> list[str]:
    return ["docker", "inspect", "--format", "{{json .State}}", container]


def image_tags(repository: str) -> list[str]:
    return ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repository]


def remove_images(refs: Sequence[str]) -> list[str]:
    return ["docker", "image", "rm", *refs]


def shell_command(command: str | Sequence[str]) -> list[str]:
    """A configured command: a string runs through `sh -c`, a list runs as given."""
    return ["sh", "-c", command] if isinstance(command, str) else list(command)
