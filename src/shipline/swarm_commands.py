"""Pure builders of the `docker` argv lists a Swarm deploy runs on the manager and on each node."""

from __future__ import annotations

from collections.abc import Sequence

# `docker stack deploy` reads `${VAR}` from its environment: the release's stack.env (mode 0600) is sourced
# first, so no value is in a command line. `changed`: the registry is asked for a digest only when an image
# reference changed, so an unchanged service (a database) is not updated because a tag moved elsewhere.
STACK_DEPLOY = '. "$1" && exec docker stack deploy --with-registry-auth --resolve-image changed --compose-file "$2" "$3"'


def stack_deploy(stack: str, compose_file: str, env_file: str) -> list[str]:
    """Create or update the stack's services in `compose_file`; services not in it are left alone (no --prune)."""
    return ["sh", "-c", STACK_DEPLOY, "shipline-stack", env_file, compose_file, stack]


def services(app_label: str, app: str) -> list[str]:
    """IDs of the app's services (shipline labels every service it deploys)."""
    return ["docker", "service", "ls", "--quiet", "--filter", f"label={app_label}={app}"]


def service_list(app_label: str, app: str) -> list[str]:
    """The app's services, one JSON object each (name, mode, tasks running/desired, image): `shipline status`."""
    return ["docker", "service", "ls", "--filter", f"label={app_label}={app}", "--format", "{{json .}}"]


def inspect_services(ids: Sequence[str]) -> list[str]:
    return ["docker", "service", "inspect", *ids]


def remove_services(names: Sequence[str]) -> list[str]:
    """Swarm stops their tasks gracefully (each task's stop signal, then `stop_grace_period`)."""
    return ["docker", "service", "rm", *names]


def rollback_service(name: str) -> list[str]:
    """Back to the definition it had before its last update (Swarm keeps it as `PreviousSpec`)."""
    return ["docker", "service", "rollback", "--detach", name]


def service_logs(name: str) -> list[str]:
    return ["docker", "service", "logs", "--raw", "--no-trunc", name]


def node_id() -> list[str]:
    return ["docker", "info", "--format", "{{.Swarm.NodeID}}"]


def node_names() -> list[str]:
    return ["docker", "node", "ls", "--format", "{{.ID}} {{.Hostname}}"]


def task_containers(service: str) -> list[str]:
    """Full IDs of the running containers of a Swarm service's tasks on this node."""
    return ["docker", "ps", "--quiet", "--no-trunc", "--filter", f"label=com.docker.swarm.service.name={service}",
            "--filter", "status=running"]


def gateway_addresses() -> list[str]:
    """Each container's address on the node's `docker_gwbridge`, which only the node itself reaches."""
    return ["docker", "network", "inspect", "--format", "{{json .Containers}}", "docker_gwbridge"]
