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
    cache: tuple[str, str] | None = None,
    secrets: Sequence[str] = (),
) -> list[str]:
    """BuildKit build into the local image store (the `docker` driver sees locally present base images).

    `cache`: (type, ref) of a registry cache (`registry` or `inline`, see config.BuildCache). Each secret is
    read from the environment variable of its name, which the caller sets for this process only.
    """
    argv = ["docker", "buildx", "build", "--progress=plain", "--load", "--tag", ref]
    if cache:
        kind, cache_ref = cache
        argv += ["--cache-from", f"type=registry,ref={cache_ref}",
                 "--cache-to", f"type=registry,ref={cache_ref},mode=max" if kind == "registry" else "type=inline"]
    if dockerfile:
        argv += ["--file", dockerfile]
    if target:
        argv += ["--target", target]
    for key, value in (args or {}).items():
        argv += ["--build-arg", f"{key}={value}"]
    for key, value in (labels or {}).items():
        argv += ["--label", f"{key}={value}"]
    for name in secrets:
        argv += ["--secret", f"id={name},env={name}"]
    return [*argv, context]


def builder_driver() -> list[str]:
    """The current buildx builder's description; its `Driver:` line says whether it can export a cache."""
    return ["docker", "buildx", "inspect"]


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


def compose(project: str, files: Sequence[str], env_files: Sequence[str], project_directory: str) -> list[str]:
    """`docker compose` bound to one project, its files (merged in order), its env files (later ones win) and
    the directory relative paths in the files start from."""
    argv = ["docker", "compose", "--project-name", project, "--project-directory", project_directory]
    for f in files:
        argv += ["--file", f]
    for e in env_files:
        argv += ["--env-file", e]
    return argv


def image_tags(repositories: Sequence[str]) -> list[str]:
    """`repo:tag id` per image of these repositories (one listing: each costs the engine a walk over every
    image); a tag that moved on (a rebuild) leaves `repo:<none> id` behind."""
    return ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}",
            *(f"--filter=reference={repo}" for repo in repositories)]


def remove_images(refs: Sequence[str]) -> list[str]:
    return ["docker", "image", "rm", *refs]


def shell_command(command: str | Sequence[str]) -> list[str]:
    """A configured command: a string runs through `sh -c`, a list runs as given."""
    return ["sh", "-c", command] if isinstance(command, str) else list(command)


def stop(containers: Sequence[str], timeout: int) -> list[str]:
    """Graceful stop: the image's stop signal, then SIGKILL after `timeout` seconds (`-t`: every client knows it)."""
    return ["docker", "stop", "-t", str(timeout), *containers]


def remove(containers: Sequence[str], *, force: bool = False) -> list[str]:
    return ["docker", "rm", *(["--force"] if force else []), *containers]


def compose_up(base: Sequence[str], service: str, *, replicas_beside: int | None = None,
               fresh: bool = False) -> list[str]:
    """Create or update one service. Compose leaves an unchanged service (a database) running.

    With `replicas_beside`, the existing containers are kept and that many new ones start next to them;
    `fresh` replaces the container even when its definition is unchanged (a one-shot job runs again).
    """
    argv = [*base, "up", "--detach", "--no-deps", "--no-build"]
    if replicas_beside:
        argv += ["--no-recreate", "--scale", f"{service}={2 * replicas_beside}"]
    if fresh:
        argv.append("--force-recreate")
    return [*argv, service]



def service_containers(project: str, service: str, *, all_states: bool = False) -> list[str]:
    """Full IDs of a Compose service's containers (not one-off `run`s): running ones, or all of them.

    Asks the engine by Compose's labels: the same answer as `docker compose ps -q`, several times faster.
    """
    argv = ["docker", "ps", "--quiet", "--no-trunc", "--filter", f"label=com.docker.compose.project={project}",
            "--filter", f"label=com.docker.compose.service={service}", "--filter", "label=com.docker.compose.oneoff=False"]
    return argv + (["--all"] if all_states else ["--filter", "status=running"])


def labelled_containers(project: str, label: str) -> list[str]:
    """Every container of a Compose project, one-offs (`compose run`) included, one line each: id, state, whether
    it is a one-off (`True`/`False`), service and the value of `label` (last: it may be empty)."""
    return ["docker", "ps", "--all", "--no-trunc", "--filter", f"label=com.docker.compose.project={project}",
            "--format", f'{{{{.ID}}}} {{{{.State}}}} {{{{.Label "com.docker.compose.oneoff"}}}} '
                        f'{{{{.Label "com.docker.compose.service"}}}} {{{{.Label "{label}"}}}}']


def repo_digests(refs: Sequence[str]) -> list[str]:
    """One line per image: its repository digests as JSON (what a tag pointed to when the host pulled it)."""
    return ["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", *refs]


def remove_container(name: str) -> list[str]:
    return ["docker", "rm", "--force", name]


def inspect_networks(*containers: str) -> list[str]:
    """One line per container, in the order given: its networks as JSON."""
    return ["docker", "inspect", "--format", "{{json .NetworkSettings.Networks}}", *containers]


def engine_platform() -> list[str]:
    """The engine's own platform, e.g. `linux/amd64`: what it builds for when no `--platform` is given."""
    return ["docker", "version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"]


def compose_config(base: Sequence[str]) -> list[str]:
    """The project as Compose resolves it (interpolated, merged, paths absolute), as JSON. It carries the env
    file's values: read it with `query`, never print it."""
    return [*base, "config", "--format", "json"]


def image_ids(refs: Sequence[str]) -> list[str]:
    """`<tags as JSON> <image ID>` per image present; an absent one only adds an error (exit status 1)."""
    return ["docker", "image", "inspect", "--format", "{{json .RepoTags}} {{.Id}}", *refs]


def project_containers(project: str, label: str) -> list[str]:
    """The project's running service containers, one line each: id, service and the value of `label`."""
    return ["docker", "ps", "--no-trunc", "--filter", f"label=com.docker.compose.project={project}",
            "--filter", "label=com.docker.compose.oneoff=False", "--format",
            f'{{{{.ID}}}} {{{{.Label "com.docker.compose.service"}}}} {{{{.Label "{label}"}}}}']


def container_images(containers: Sequence[str]) -> list[str]:
    """`<container id> <image id>` per container: the image it really runs, whatever tag started it."""
    return ["docker", "inspect", "--format", "{{.Id}} {{.Image}}", *containers]


def network_names() -> list[str]:
    return ["docker", "network", "ls", "--format", "{{.Name}}"]
