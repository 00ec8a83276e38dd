"""What a Swarm service's tasks say, read from `docker inspect` of them on a manager (docs/swarm.md). Not wired yet.

The health barrier: with a health check, a task is `running` only once its container is healthy, so a new
release's service is ready when as many tasks as it has replicas are running; a task that failed or was
rejected (a crash, an unhealthy container, an image that cannot be pulled) fails the deploy at once, since
every task of a release's service was started by this deploy. The switch routes to the running tasks'
addresses on the network the edge proxy shares with them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

FAILED = ("failed", "rejected", "orphaned")


def list_argv(service: str) -> list[str]:
    """IDs of the service's tasks, every state (failed ones tell why a release is not healthy)."""
    return ["docker", "service", "ps", "--quiet", "--no-trunc", service]


def inspect_argv(task_ids: Sequence[str]) -> list[str]:
    return ["docker", "inspect", "--type", "task", *task_ids]


def verdict(tasks: Sequence[Mapping[str, Any]], replicas: int) -> tuple[str, str]:
    """('healthy' | 'waiting' | 'failed', reason) for a service this deploy created."""
    for t in tasks:
        status = t.get("Status") or {}
        if status.get("State") in FAILED:
            return "failed", f"a task {status.get('State')}: {status.get('Err') or status.get('Message') or 'no reason given'}"
    running = [t for t in tasks if (t.get("Status") or {}).get("State") == "running" and t.get("DesiredState") == "running"]
    if len(running) >= replicas:
        return "healthy", ""
    states = sorted({str((t.get("Status") or {}).get("State")) for t in tasks}) or ["none yet"]
    return "waiting", f"{len(running)} of {replicas} task(s) running (states: {', '.join(states)})"


def addresses(tasks: Sequence[Mapping[str, Any]], network: str, port: int) -> list[str]:
    """host:port of every running task on `network` (a stack network is named `<stack>_<name>`)."""
    found = []
    for t in tasks:
        if (t.get("Status") or {}).get("State") != "running" or t.get("DesiredState") != "running":
            continue
        for att in t.get("NetworksAttachments") or []:
            if (att.get("Network") or {}).get("Spec", {}).get("Name") == network:
                found += [f"{a.split('/')[0]}:{port}" for a in att.get("Addresses") or []]
    return sorted(found)
