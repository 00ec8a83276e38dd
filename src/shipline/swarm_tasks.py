"""What a Swarm service and its tasks say, read from `docker inspect` of them on a manager (docs/swarm.md).

The health barrier: with a health check, a task is `running` only once its container is healthy, so a new
release's service is ready when as many tasks as it has replicas are running; a task that failed or was
rejected (a crash, an unhealthy container, an image that cannot be pulled) fails the deploy at once, since
every task of a release's service was started by this deploy. The switch routes to the running tasks'
addresses on the network the edge proxy shares with them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FAILED = ("failed", "rejected", "orphaned")
# What `UpdateStatus.State` says when Swarm gave up an update (and perhaps rolled it back itself).
UPDATE_FAILED = ("paused", "rollback_started", "rollback_paused", "rollback_completed")


@dataclass(frozen=True)
class ServiceInfo:
    """One Swarm service as `docker service inspect` describes it."""

    id: str
    name: str
    labels: dict[str, str]
    replicas: int | None  # None: a global service (one task per eligible node)
    spec: dict[str, Any]
    update_state: str = ""  # UpdateStatus.State: "" (never updated), updating, completed, paused, rollback_*
    update_message: str = ""

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ServiceInfo:
        spec = dict(data.get("Spec") or {})
        mode = spec.get("Mode") or {}
        replicas = (mode.get("Replicated") or {}).get("Replicas") if "Replicated" in mode else None
        update = data.get("UpdateStatus") or {}
        return cls(str(data.get("ID", "")), str(spec.get("Name", "")), {str(k): str(v) for k, v in (spec.get("Labels") or {}).items()},
                   int(replicas) if replicas is not None else None, spec, str(update.get("State") or ""),
                   str(update.get("Message") or ""))

    def label(self, key: str) -> str:
        return self.labels.get(key, "")


def current(tasks: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The tasks Swarm wants running now (the others are history: replaced, shut down, failed before)."""
    return [t for t in tasks if t.get("DesiredState") == "running"]


def converged(service: ServiceInfo, tasks: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """('healthy' | 'waiting' | 'failed', reason) for a service updated in place: its update done, every task running."""
    if service.update_state in UPDATE_FAILED:
        return "failed", f"Swarm's update {service.update_state.replace('_', ' ')}: {service.update_message or 'no reason given'}"
    if service.update_state == "updating":
        return "waiting", "Swarm is updating it"
    wanted = current(tasks)
    replicas = service.replicas if service.replicas is not None else max(1, len(wanted))
    return verdict(wanted, replicas, failures=False)


def oneoff_verdict(tasks: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """('healthy' | 'waiting' | 'failed', reason) for a one-off service: done once its task completed (exit 0)."""
    for t in tasks:
        status = t.get("Status") or {}
        if status.get("State") == "complete":
            return "healthy", ""
        if status.get("State") in (*FAILED, "shutdown", "remove"):
            return "failed", f"its task {status.get('State')}: {status.get('Err') or status.get('Message') or 'no reason given'}"
    states = sorted({str((t.get("Status") or {}).get("State")) for t in tasks}) or ["none yet"]
    return "waiting", f"task {', '.join(states)}"


def list_argv(service: str) -> list[str]:
    """IDs of the service's tasks, every state (failed ones tell why a release is not healthy)."""
    return ["docker", "service", "ps", "--quiet", "--no-trunc", service]


def inspect_argv(task_ids: Sequence[str]) -> list[str]:
    return ["docker", "inspect", "--type", "task", *task_ids]


def verdict(tasks: Sequence[Mapping[str, Any]], replicas: int, *, failures: bool = True) -> tuple[str, str]:
    """('healthy' | 'waiting' | 'failed', reason) for a service this deploy created (`failures`: any task that
    failed fails it, since every task of it was started by this deploy)."""
    for t in tasks if failures else ():
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
