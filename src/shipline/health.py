"""Health gates: wait until a service's containers are healthy, by asking Docker, never by sleeping blindly."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import docker_commands as dc
from .errors import DeployFailed
from .executors.base import Executor


def container_verdict(state: dict[str, Any]) -> tuple[str, str]:
    """('healthy' | 'waiting' | 'failed', reason) for one container's `.State`."""
    status = state.get("Status", "")
    health = state.get("Health") or {}
    if status in ("exited", "dead"):
        return "failed", f"container {status} with exit code {state.get('ExitCode')}"
    if health:
        hs = health.get("Status")
        if hs == "healthy":
            return "healthy", ""
        if hs == "unhealthy":
            log = health.get("Log") or []
            last = (log[-1].get("Output") or "").strip() if log else ""
            return "failed", f"health check failing{': ' + last[-300:] if last else ''}"
        return "waiting", f"health {hs}"
    if status == "running" and not state.get("Restarting"):
        return "healthy", ""  # no health check defined: running is all Docker can tell
    return "waiting", f"container {status or 'unknown'}"


def wait_healthy(
    ex: Executor,
    compose_base: Sequence[str],
    service: str,
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    interval: float = 0.5,
) -> float:
    """Block until every container of `service` is healthy; return seconds waited. Raise DeployFailed otherwise."""
    start = clock()
    reason = "no container"
    while True:
        ids = ex.run([*compose_base, "ps", "--all", "--quiet", service])
        containers = ids.output.split() if ids.ok else []
        verdicts = []
        for cid in containers:
            res = ex.run(dc.inspect_state(cid))
            verdicts.append(container_verdict(json.loads(res.output)) if res.ok else ("waiting", "inspect failed"))
        if containers and all(v == "healthy" for v, _ in verdicts):
            return clock() - start
        failed = [r for v, r in verdicts if v == "failed"]
        if failed:
            raise DeployFailed(f"{service} did not become healthy: {failed[0]}")
        reason = next((r for v, r in verdicts if v != "healthy"), reason)
        if clock() - start >= timeout:
            raise DeployFailed(f"{service} did not become healthy within {timeout:g}s ({reason})")
        sleep(interval)
