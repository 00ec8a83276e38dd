"""job: a one-shot container (migrations, a seed) that runs to completion; exit status 0 is success.

Compose runs it afresh each release (its definition may be unchanged) and the deploy waits for it to exit,
as `depends_on: {condition: service_completed_successfully}` would. What it did cannot be taken back, so an
undo leaves it; nothing of it keeps running, so nothing is retired.
"""

from __future__ import annotations

from .. import docker_commands as dc
from .. import health
from .base import Applied, RolloutHost


class Job:
    def roll_out(self, host: RolloutHost, release: int, applied: Applied) -> None:
        step, svc = applied.step, applied.step.service
        host.run(dc.compose_up(host.compose_base(release), svc, fresh=True), f"run {svc}")
        applied.new = host.containers(svc, all_states=True)
        took = health.wait_completed(host.ex, applied.new, svc, step.health_timeout, sleep=host.sleep)
        host.report.info(f"{host.ex.name}: {svc} completed (exit status 0) after {took:.1f}s")

    def undo(self, host: RolloutHost, applied: Applied, previous: int | None) -> None:
        """A job's effects (a migration applied) are not undone by shipline; nothing of it is running."""

    def retire(self, host: RolloutHost, done: list[Applied]) -> None:
        """Its container has exited; Compose replaces it on the next release."""
