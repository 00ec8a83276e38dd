"""Health gates: wait until containers are healthy, by asking Docker, never by sleeping blindly.

Docker runs a health check every `interval` (engine 20.10 has no faster `start_interval`), so a service ready
after 1 s is reported healthy only at the next tick. While gating, shipline may run the service's own check in
the container itself (`docker exec`) at a short, bounded interval: a passing probe makes a container *ready*
(safe to switch to). Only Docker's own status makes it *healthy*, and that must still agree before the old
containers are retired. A failing probe is never a verdict: only Docker's status, a crash or the timeout fail.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from .errors import DeployFailed, StepFailed
from .executors.base import Executor

# `.State` plus the restart count: a crash loop under a restart policy never shows "exited" for long.
INSPECT_FORMAT = '{"State": {{json .State}}, "RestartCount": {{.RestartCount}}}'
# The same, with the effective health check (Compose's `healthcheck:` or the image's HEALTHCHECK) and the shell
# CMD-SHELL uses: what a gate reads once, first.
PROBE_FORMAT = ('{"State": {{json .State}}, "RestartCount": {{.RestartCount}}, '
                '"Healthcheck": {{json .Config.Healthcheck}}, "Shell": {{json .Config.Shell}}}')
DEFAULT_SHELL = ("/bin/sh", "-c")  # Docker's, when the image sets no SHELL
PROBE_FIRST_INTERVAL = 0.2  # seconds between probes at first; they grow to PROBE_MAX_INTERVAL
PROBE_MAX_INTERVAL = 1.0
PROBE_MAX_TIMEOUT = 10.0  # a probe that hangs longer than this (or its own timeout) counts as "not yet"


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


def verdict_of(ex: Executor, container: str, judge: Callable[[dict[str, Any]], tuple[str, str]] = container_verdict
               ) -> tuple[str, str]:
    try:
        data = json.loads(ex.query(inspect_health(container)))
    except StepFailed:
        return "failed", "container is gone"
    except ValueError:
        return "waiting", "docker inspect printed no JSON"
    return judge(data) if isinstance(data, dict) else ("waiting", "docker inspect printed no object")


def wait_healthy(
    ex: Executor,
    containers: Sequence[str],
    service: str,
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    interval: float = 0.1,
    judge: Callable[[dict[str, Any]], tuple[str, str]] = container_verdict,
    goal: str = "become healthy",
) -> float:
    """Block until every container is healthy (by `judge`); return seconds waited. Raise DeployFailed otherwise."""
    if not containers:
        raise DeployFailed(f"{service}: no container was started")
    start = clock()
    while True:
        verdicts = [verdict_of(ex, cid, judge) for cid in containers]
        if all(v == "healthy" for v, _ in verdicts):
            return clock() - start
        failed = [r for v, r in verdicts if v == "failed"]
        if failed:
            raise DeployFailed(f"{service} did not {goal}: {failed[0]}")
        if clock() - start >= timeout:
            reason = next(r for v, r in verdicts if v != "healthy")
            raise DeployFailed(f"{service} did not {goal} within {timeout:g}s ({reason})")
        sleep(interval)


def job_verdict(info: dict[str, Any]) -> tuple[str, str]:
    """('healthy' | 'waiting' | 'failed', reason) for a one-shot container: done once it exited with status 0."""
    state = info.get("State", info)
    status, code = state.get("Status", ""), state.get("ExitCode")
    if status in ("exited", "dead"):
        return ("healthy", "") if code == 0 and status == "exited" else ("failed", f"it exited with status {code}")
    if int(info.get("RestartCount", 0) or 0) > 0 or status == "restarting":
        return "failed", f"it failed and was restarted (last exit status {code})"
    return "waiting", f"container {status or 'unknown'}"


def wait_completed(ex: Executor, containers: Sequence[str], service: str, timeout: float,
                   *, sleep: Callable[[float], None] = time.sleep) -> float:
    """Block until a one-shot job's containers exited 0; return seconds waited. Raise DeployFailed, with the last
    lines it printed, when one exits otherwise, or at the timeout."""
    try:
        return wait_healthy(ex, containers, service, timeout, sleep=sleep, judge=job_verdict, goal="complete")
    except DeployFailed as exc:
        tail = ex.run(["docker", "logs", "--tail", "20", containers[-1]]).output.strip() if containers else ""
        raise DeployFailed(exc.message + (f". Its last lines:\n{tail}" if tail else "")) from None


def probe_command(test: str | Sequence[str] | None, shell: Sequence[str] | None = None) -> list[str] | None:
    """The argv of a health check, to run with `docker exec`; None when there is none to run.

    `test` as Compose writes it (a string is a shell command) or as `docker inspect` reports it:
    `["CMD", arg...]` runs as is, `["CMD-SHELL", command]` through the image's shell, `["NONE"]` disables it.
    """
    if test is None or len(test) == 0:
        return None
    if isinstance(test, str):
        return [*(shell or DEFAULT_SHELL), test]
    kind, *rest = test
    if kind == "CMD" and rest:
        return list(rest)
    if kind == "CMD-SHELL" and rest:
        return [*(shell or DEFAULT_SHELL), " ".join(rest)]
    return None  # NONE, or a form Docker itself would refuse


def compose_probe(healthcheck: Any) -> list[str] | None:
    """The probe of a Compose service's `healthcheck:` mapping (`disable: true` means none)."""
    if not isinstance(healthcheck, dict) or healthcheck.get("disable"):
        return None
    test = healthcheck.get("test")
    return probe_command(test if isinstance(test, str | list) else None)


def probe_interval(attempt: int, docker_interval: float | None = None) -> float:
    """Seconds before probe number `attempt` + 1: short at first, growing, never above the cap (or Docker's own
    interval, when that is shorter: then Docker's status comes as fast)."""
    interval = min(PROBE_FIRST_INTERVAL * 1.5 ** attempt, PROBE_MAX_INTERVAL)
    return min(interval, docker_interval) if docker_interval else interval


def probe_timeout(healthcheck: dict[str, Any] | None) -> float:
    """The check's own timeout (Docker reports nanoseconds; 30 s when unset), bounded."""
    ns = (healthcheck or {}).get("Timeout") or 0
    return min(ns / 1e9 if ns else 30.0, PROBE_MAX_TIMEOUT)


def exec_probe(container: str, command: Sequence[str], timeout: float) -> list[str]:
    """`docker exec` of the check, killed (with its client) if it outlives `timeout`."""
    return ["timeout", "--kill-after=1", f"{timeout:g}", "docker", "exec", container, *command]


def inspect_probe(container: str) -> list[str]:
    return ["docker", "inspect", "--format", PROBE_FORMAT, container]


def wait_ready(
    ex: Executor,
    containers: Sequence[str],
    service: str,
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Block until every container is ready: Docker says healthy, or its own check passes when run now.

    Returns the seconds waited. Fails like `wait_healthy` (crash, unhealthy, timeout); a failing probe only
    means "not yet". Before the old containers go, `wait_healthy` must still agree.
    """
    if not containers:
        raise DeployFailed(f"{service}: no container was started")
    start = clock()
    probes: dict[str, tuple[list[str], float] | None] = {}
    first: dict[str, tuple[str, str]] = {}  # the first verdicts, from the same inspection
    for cid in containers:
        try:
            info = _json(ex.query(inspect_probe(cid)))
        except StepFailed:
            info = {}
        first[cid] = container_verdict(info) if info else ("failed", "container is gone")
        check = info.get("Healthcheck") or None
        command = probe_command((check or {}).get("Test"), info.get("Shell"))
        probes[cid] = (command, probe_timeout(check)) if command else None
    ready: set[str] = set()
    attempt = 0
    while True:
        for cid in containers:
            if cid in ready:
                continue
            verdict, reason = first.pop(cid) if cid in first else verdict_of(ex, cid)
            if verdict == "failed":
                raise DeployFailed(f"{service} did not become healthy: {reason}")
            probe = probes[cid]
            if verdict == "healthy" or (probe and ex.run(exec_probe(cid, *probe)).ok):
                ready.add(cid)
        if len(ready) == len(containers):
            return clock() - start
        if clock() - start >= timeout:
            raise DeployFailed(f"{service} did not become healthy within {timeout:g}s (its health check has not passed yet)")
        sleep(probe_interval(attempt))
        attempt += 1


def _json(text: str) -> dict[str, Any]:
    """The JSON object in `docker inspect --format` output (a warning line may precede it)."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            data: dict[str, Any] = json.loads(line)
            return data
    return {}
