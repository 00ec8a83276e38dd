"""zero-downtime and start-first: the new container starts next to the old one and takes over once healthy.

For a routed service (zero-downtime) the proxy is switched to the new container and the switch confirmed.
The old containers keep running until every service is switched, so undoing a failed deploy is a switch
back; then `retire` drains and stops them gracefully.
"""

from __future__ import annotations

from .. import docker_commands as dc
from .base import Applied, RolloutHost


class SideBySide:
    def roll_out(self, host: RolloutHost, release: int, applied: Applied) -> None:
        step, svc, name = applied.step, applied.step.service, host.ex.name
        base = host.compose_base(release)
        if applied.old:
            host.report.info(f"{name}: {svc}: starting the new container next to the old one")
            host.run(dc.compose_up(base, svc, replicas_beside=len(applied.old)), f"start new {svc}")
        else:
            host.run(dc.compose_up(base, svc), f"start {svc}")
        applied.new = [c for c in host.containers(svc, all_states=True) if c not in applied.old]
        waited = host.wait_ready(applied.new, svc, step.health_timeout)
        host.report.info(f"{name}: {svc} healthy after {waited:.1f}s (its own check passed)")
        if host.routed(step):
            assert step.port is not None
            found = host.endpoints([*applied.old, *applied.new], step.port)
            applied.old_endpoints, new_endpoints = found[:len(applied.old)], found[len(applied.old):]
            applied.switched = True  # before: a switch cut short may have reached the proxy, so undo switches back
            took = host.switch(svc, new_endpoints)
            applied.switched_at = host.clock()
            host.report.info(f"{name}: {svc}: proxy switched to {', '.join(new_endpoints)} and confirmed in {took:.2f}s")

    def undo(self, host: RolloutHost, applied: Applied, previous: int | None) -> None:
        svc = applied.step.service
        if applied.switched and applied.old_endpoints:
            host.switch(svc, applied.old_endpoints)
            host.report.info(f"{host.ex.name}: {svc}: proxy switched back to the old container")
        if applied.new:
            host.ex.run(dc.remove(applied.new, force=True))

    def retire(self, host: RolloutHost, done: list[Applied]) -> None:
        """Drain, then stop gracefully, the containers the new ones replaced (in parallel per stop timeout).

        A routed service's drain counts from its switch, as `drain` is documented: the time spent since then
        (other services' gates, Docker's own health status agreeing) already gave in-flight requests their time.
        """
        retiring = [a for a in done if a.old]
        if not retiring:
            return
        names = ", ".join(a.step.service for a in retiring)
        now = host.clock()
        drain = max(a.step.drain - (now - a.switched_at if a.switched_at is not None else 0) for a in retiring)
        if drain > 0:
            host.report.info(f"{host.ex.name}: draining old {names} for {drain:.1f}s")
            host.sleep(drain)
        elif any(a.step.drain for a in retiring):
            host.report.info(f"{host.ex.name}: old {names} drained (their drain time has passed since the switch)")
        for timeout in sorted({a.step.stop_timeout for a in retiring}):
            host.stop([c for a in retiring if a.step.stop_timeout == timeout for c in a.old], timeout, f"old {names}")
        host.report.info(f"{host.ex.name}: old {names} stopped")
