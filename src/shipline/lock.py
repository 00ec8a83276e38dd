"""The deploy lock on a host: an atomic `mkdir` plus a note of who holds it, with an expiry.

A killed run cannot block deploys forever: once the holder's expiry has passed the lock is broken.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import LockedError
from .executors.base import Executor
from .layout import HostLayout

INFO = "info.json"


@dataclass(frozen=True)
class LockInfo:
    holder: str
    commit: str
    created: float
    expires: float

    def describe(self) -> str:
        return (f"held by {self.holder} deploying {self.commit} since "
                f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(self.created))}, "
                f"expires {time.strftime('%H:%M:%S UTC', time.gmtime(self.expires))}")


def read(ex: Executor, layout: HostLayout) -> LockInfo | None:
    if not ex.run(["test", "-d", layout.lock_dir]).ok:
        return None
    raw = ex.read(f"{layout.lock_dir}/{INFO}")
    try:
        data: dict[str, Any] = json.loads(raw or b"")
        return LockInfo(str(data["holder"]), str(data["commit"]), float(data["created"]), float(data["expires"]))
    except (ValueError, KeyError):
        # Taken a moment ago (note not written yet) or left by a run killed in between: date it by the directory.
        stat = ex.run(["stat", "-c", "%Y", layout.lock_dir])
        created = float(stat.output.strip() or 0) if stat.ok else 0.0
        return LockInfo("unknown", "unknown", created, created + 60)


def acquire(
    ex: Executor,
    layout: HostLayout,
    *,
    holder: str,
    commit: str,
    ttl: float,
    wait: float,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    on_wait: Callable[[LockInfo], None] | None = None,
) -> None:
    ex.run(["mkdir", "-p", layout.app_dir]).check()
    deadline = clock() + wait
    announced = False
    while True:
        if ex.run(["mkdir", layout.lock_dir]).ok:
            now = clock()
            note = {"holder": holder, "commit": commit, "created": now, "expires": now + ttl}
            ex.put(f"{layout.lock_dir}/{INFO}", json.dumps(note).encode())
            return
        info = read(ex, layout)
        if info is None:
            continue  # released between our mkdir and our look
        if info.expires < clock():
            ex.run(["rm", "-rf", layout.lock_dir])  # stale: its holder died without releasing it
            continue
        if clock() >= deadline:
            raise LockedError(
                f"{ex.name}: the deploy lock is {info.describe()}. Wait for that deploy to finish, or, if it is dead, "
                f"run `shipline lock release`."
            )
        if on_wait and not announced:
            on_wait(info)
            announced = True
        sleep(1.0)


def release(ex: Executor, layout: HostLayout) -> None:
    ex.run(["rm", "-rf", layout.lock_dir])
