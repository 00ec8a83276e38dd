"""Which services roll out together: each one as soon as the services it depends on are done.

Services that do not depend on each other are started and health-gated at the same time, so a deploy waits
for the slowest gate of each wave, not for the sum of all gates. Between dependent services the configured
order still holds, whichever way the dependency points, and the proxy, which the others are switched through,
goes alone and first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def waves(order: Sequence[str], depends_on: Mapping[str, Sequence[str]], first: str | None = None,
          migrated: str | None = None) -> list[list[str]]:
    """`order` split into waves; a service's wave comes after the wave of every earlier service it depends on
    or that depends on it.

    `migrated` is the service whose migration runs first in its wave: only what it depends on may go before
    it, so a failing migration still stops the deploy before anything else was switched.
    """
    level: dict[str, int] = {}
    for i, svc in enumerate(order):
        earlier = order[:i]
        related = [e for e in earlier if e in depends_on.get(svc, ()) or svc in depends_on.get(e, ())]
        level[svc] = max((level[e] + 1 for e in related), default=0)
        if first is not None and first in earlier:
            level[svc] = max(level[svc], level[first] + 1)
    if migrated in level:
        needed = _closure(migrated, depends_on)
        barrier = level[migrated]
        for svc in order:
            if svc not in needed and svc != first and level[svc] < barrier:
                level[svc] = barrier
    grouped: dict[int, list[str]] = {}
    for svc in order:
        grouped.setdefault(level[svc], []).append(svc)
    return [grouped[n] for n in sorted(grouped)]


def _closure(service: str, depends_on: Mapping[str, Sequence[str]]) -> set[str]:
    """Everything `service` depends on, directly or not."""
    found: set[str] = set()
    todo = list(depends_on.get(service, ()))
    while todo:
        dep = todo.pop()
        if dep not in found:
            found.add(dep)
            todo += depends_on.get(dep, ())
    return found
