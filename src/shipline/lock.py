"""The deploy lock on a host: `flock` held by a process that lives exactly as long as the deploy's connection.

The holder is a small shell script started over the deploy's own SSH connection. It takes `flock` on
`deploy.lock`, notes who holds it, and then waits for its stdin to close: that happens when the deploy
releases the lock, and also when the deploy is killed or its connection drops (the server closes the
session), so a dead deploy frees the lock within seconds. The lock file's `flock` is exclusive by the
kernel's word, whatever the clocks say; `lock_ttl` is only a backstop for a holder whose connection hangs
without closing. Everything the note says comes from the server (its clock, the holder's pid).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import DeployFailed, LockedError
from .executors.base import Executor, Held
from .layout import HostLayout

HOLDER = r"""
command -v flock >/dev/null 2>&1 || { echo "ERROR flock is not installed on this host (package util-linux)"; exit 70; }
mkdir -p "$5" || { echo "ERROR cannot create $5"; exit 71; }
exec 9>>"$1" || { echo "ERROR cannot open $1"; exit 71; }
if ! flock -n 9; then
  echo BUSY
  flock -w "$3" 9 || { echo TIMEOUT; exit 75; }
fi
printf '{"pid": %s, "since": %s, "note": %s}\n' "$$" "$(date +%s)" "$2" >"$1.holder.tmp" && mv -f "$1.holder.tmp" "$1.holder"
echo LOCKED
timeout "$4" cat >/dev/null 9>&-
rm -f "$1.holder"
"""


@dataclass(frozen=True)
class LockInfo:
    """Who holds (or last held) a host's lock, from the note its holder wrote."""

    holder: str
    commit: str
    since: float
    pid: int
    alive: bool

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since))
        state = "" if self.alive else " (its process is gone: the lock is free)"
        return f"held by {self.holder} deploying {self.commit} since {when}{state}"

    def as_dict(self) -> dict[str, Any]:
        return {"holder": self.holder, "commit": self.commit, "since": self.since, "pid": self.pid, "alive": self.alive}


def holder_argv(layout: HostLayout, note: dict[str, str], wait: float, ttl: float) -> list[str]:
    """The holder script's argv; it makes the app directory itself (one command less before every deploy)."""
    return ["sh", "-c", HOLDER, "shipline-lock", layout.lock_file, json.dumps(note), str(int(wait)), str(int(ttl)),
            layout.app_dir]


class HeldLock:
    """A lock this deploy holds on one host. `check()` before each step: if the holder died, stop."""

    def __init__(self, ex: Executor, held: Held) -> None:
        self.ex, self._held = ex, held

    def check(self) -> None:
        if not self._held.alive():
            raise DeployFailed(f"{self.ex.name}: the deploy lock was lost (its holder ended: the connection dropped "
                               "or the lock outlived deploy.lock_ttl); stopping before touching anything else")

    def release(self) -> None:
        self._held.close()


def acquire(
    ex: Executor,
    layout: HostLayout,
    *,
    holder: str,
    commit: str,
    ttl: float,
    wait: float,
    on_wait: Callable[[LockInfo], None] | None = None,
) -> HeldLock:
    held = ex.hold(holder_argv(layout, {"holder": holder, "commit": commit}, wait, ttl))
    first = held.readline(timeout=30)
    if first == "BUSY":
        info = read(ex, layout)
        if on_wait and info:
            on_wait(info)
        first = held.readline(timeout=wait + 30)
    if first == "LOCKED":
        return HeldLock(ex, held)
    held.close()
    if first == "TIMEOUT" or first == "BUSY":
        info = read(ex, layout)
        who = info.describe() if info else "held by another deploy"
        raise LockedError(f"{ex.name}: the deploy lock is {who}. Wait for that deploy to finish; a deploy that was "
                          "killed or lost its connection frees it within seconds. `shipline lock status` shows "
                          "whether its holder is alive.")
    why = first.removeprefix("ERROR ") if first else "the lock holder did not answer"
    raise DeployFailed(f"{ex.name}: cannot take the deploy lock: {why}")


def read(ex: Executor, layout: HostLayout) -> LockInfo | None:
    """The holder's note, and whether its process still runs. None when nobody holds the lock."""
    raw = ex.read(layout.lock_holder)
    if not raw:
        return None
    try:
        data = json.loads(raw)
        note = data.get("note") or {}
        pid = int(data["pid"])
        info = LockInfo(str(note.get("holder", "unknown")), str(note.get("commit", "unknown")), float(data["since"]),
                        pid, alive=False)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    alive = ex.run(["kill", "-0", str(pid)]).ok
    return LockInfo(info.holder, info.commit, info.since, pid, alive)


def break_lock(ex: Executor, layout: HostLayout) -> LockInfo | None:
    """Stop a holder whose deploy is known to be dead (its connection hangs); the kernel then frees the lock."""
    info = read(ex, layout)
    if info and info.alive:
        ex.run(["kill", "-TERM", str(info.pid)])
    ex.run(["rm", "-f", layout.lock_holder])
    return info
