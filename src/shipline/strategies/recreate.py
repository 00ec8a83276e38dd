"""recreate: Compose replaces the container (and leaves it alone when its definition is unchanged, as for a
database), then the health gate; undoing it brings the previous release's definition back the same way.
"""

from __future__ import annotations

from .. import docker_commands as dc
from .base import Applied, RolloutHost


class Recreate:
    def roll_out(self, host: RolloutHost, release: int, applied: Applied) -> None:
        step, svc = applied.step, applied.step.service
        host.run(dc.compose_up(host.compose_base(release), svc), f"start {svc}")
        applied.new = host.containers(svc, all_states=True)
        waited = host.wait_ready(applied.new, svc, step.health_timeout)
        host.report.info(f"{host.ex.name}: {svc} healthy after {waited:.1f}s")
        self._route(host, applied)

    def _route(self, host: RolloutHost, applied: Applied) -> None:
        if host.routed(applied.step) and set(applied.new) != set(applied.old):
            assert applied.step.port is not None
            applied.switched = True
            host.switch(applied.step.service, host.endpoints(applied.new, applied.step.port))

    def undo(self, host: RolloutHost, applied: Applied, previous: int | None) -> None:
        svc = applied.step.service
        if set(applied.new) == set(applied.old) or previous is None:
            return  # Compose left it alone (unchanged definition), or there is nothing to go back to
        host.run(dc.compose_up(host.compose_base(previous), svc), f"restore {svc}")
        applied.new = host.containers(svc, all_states=True)
        host.wait_healthy(applied.new, svc, applied.step.health_timeout)
        self._route(host, applied)

    def retire(self, host: RolloutHost, done: list[Applied]) -> None:
        """Compose already stopped what it replaced."""
