"""Rollout strategies behind one small interface: roll a service out, undo that, retire what it replaced.

The deployer picks one per service from the plan (`ServiceRollout.strategy`) and knows nothing of their insides.
"""

from __future__ import annotations

from typing import Protocol

from ..plan import ServiceRollout
from .base import Applied, RolloutHost
from .job import Job
from .recreate import Recreate
from .side_by_side import SideBySide


class Strategy(Protocol):
    def roll_out(self, host: RolloutHost, release: int, applied: Applied) -> None:
        """Bring the service to `release`, gated by health; record in `applied` what undoing it needs."""
        ...

    def undo(self, host: RolloutHost, applied: Applied, previous: int | None) -> None:
        """Put the service back as it was before `roll_out` (as far as `applied` says it got)."""
        ...

    def retire(self, host: RolloutHost, done: list[Applied]) -> None:
        """After every service is live: stop what the new containers replaced."""
        ...


STRATEGIES: dict[str, Strategy] = {"zero-downtime": SideBySide(), "start-first": SideBySide(), "recreate": Recreate(),
                                   "job": Job()}


def for_step(step: ServiceRollout) -> Strategy:
    return STRATEGIES[step.strategy]


__all__ = ["STRATEGIES", "Applied", "RolloutHost", "Strategy", "for_step"]
