"""Health gates: wait until containers are healthy, by asking Docker, never by sleeping blindly."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from .errors import DeployFailed
from .executors.base import Executor

# `.State` plus the restart count: a crash loop under a restart policy never shows "exited" for long.
INSPECT_FORMAT = '{"State": {{json .State}}, "RestartCount": {{.RestartCount}}}'


def inspect_health(container: str) -> list[str]:
    return ["docker", "inspect", "--format", INSPECT_FORMAT, container]


def container_verdict(info: dict[str, Any]) -> tuple[str, str]:
    """('healthy' | 'waiting' | 'failed', reason) for one container's inspect data."""
    state = info.get("State", info)
    status = state.get("Status", "")
    health = state.get("Health") or {}
    restarts = int(info.get("RestartCount", 0) or 0)
    if status in ("exited", "dead"):
        return "failed", f"container {status} with exit code {state.get('ExitCode')}"
    if restarts > 0 or status == "restarting":
        # The exit code belongs to the last run: after a restart it may be the new run's 0, so say it only if not.
        code = state.get("ExitCode")
        return "failed", f"container crashed and was restarted ({restarts} restart(s){f', last exit code {code}' if code else ''})"
    if health:
        hs = health.get("Status")
        if hs == "healthy":
            return "healthy", ""
        if hs == "unhealthy":
            log = health.get("Log") or []
            last = (log[-1].get("Output") or "").strip() if log else ""
            return "failed", f"health check failing{': ' + last[-300:] if last else ''}"
        return "waiting", f"health {hs}"
    if status == "running":
        return "healthy", ""  # no health check defined: running is all Docker can tell
    return "waiting", f"container {status or 'unknown'}"


def wait_healthy(
    ex: Executor,
    containers: Sequence[str],
    service: str,
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    interval: float = 0.25,
) -> float:
    """Block until every container is healthy; return seconds waited. Raise DeployFailed otherwise."""
    if not containers:
        raise DeployFailed(f"{service}: no container was started")
    start = clock()
    while True:
        verdicts = []
        for cid in containers:
            res = ex.run(inspect_health(cid))
            verdicts.append(container_verdict(json.loads(res.output)) if res.ok else ("failed", "container is gone"))
        if all(v == "healthy" for v, _ in verdicts):
            return clock() - start
        failed = [r for v, r in verdicts if v == "failed"]
        if failed:
            raise DeployFailed(f"{service} did not become healthy: {failed[0]}")
        if clock() - start >= timeout:
            reason = next(r for v, r in verdicts if v != "healthy")
            raise DeployFailed(f"{service} did not become healthy within {timeout:g}s ({reason})")
        sleep(interval)
