"""The deploy lock's holder script, run for real with this machine's sh and flock (no SSH, no Docker)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from shipline import lock
from shipline.errors import DeployFailed, LockedError
from shipline.executors.local import LocalExecutor
from shipline.layout import HostLayout


def layout(tmp_path: Path) -> HostLayout:
    return HostLayout(str(tmp_path), "shop")


def take(tmp_path: Path, who: str, wait: float = 0, ttl: float = 600, **kw: object) -> lock.HeldLock:
    return lock.acquire(LocalExecutor(), layout(tmp_path), holder=who, commit=f"{who}-commit", ttl=ttl, wait=wait, **kw)  # type: ignore[arg-type]


def test_the_holder_notes_who_holds_it_and_lives_until_released(tmp_path: Path) -> None:
    held = take(tmp_path, "alice")
    info = lock.read(LocalExecutor(), layout(tmp_path))
    assert info is not None and (info.holder, info.commit, info.alive) == ("alice", "alice-commit", True)
    assert abs(info.since - time.time()) < 5  # the host's clock, not ours (here the same machine)
    held.check()
    held.release()
    assert lock.read(LocalExecutor(), layout(tmp_path)) is None


def test_a_second_deploy_is_refused_naming_the_holder(tmp_path: Path) -> None:
    held = take(tmp_path, "alice")
    with pytest.raises(LockedError, match="held by alice deploying alice-commit"):
        take(tmp_path, "bob")
    held.release()


def test_a_waiter_is_told_who_holds_it_and_takes_it_when_freed(tmp_path: Path) -> None:
    held = take(tmp_path, "alice")
    seen: list[lock.LockInfo] = []
    threading.Timer(1.0, held.release).start()
    second = take(tmp_path, "bob", wait=30, on_wait=seen.append)
    assert [i.holder for i in seen] == ["alice"]
    info = lock.read(LocalExecutor(), layout(tmp_path))
    assert info is not None and info.holder == "bob"
    second.release()


def test_two_waiters_never_both_hold_it(tmp_path: Path) -> None:
    first = take(tmp_path, "alice")
    got: list[str] = []
    errors: list[Exception] = []

    def wait_for(who: str) -> None:
        try:
            h = take(tmp_path, who, wait=20)
        except LockedError as exc:
            errors.append(exc)
            return
        got.append(who)
        time.sleep(0.5)
        h.release()

    threads = [threading.Thread(target=wait_for, args=(w,)) for w in ("bob", "carol")]
    for t in threads:
        t.start()
    time.sleep(0.5)
    first.release()
    for t in threads:
        t.join()
    assert sorted(got) == ["bob", "carol"] and not errors  # one after the other, each with the lock to itself


def test_a_killed_deploy_frees_the_lock_within_seconds(tmp_path: Path) -> None:
    """kill -9 of the process holding the connection: the holder's stdin closes and flock lets go."""
    script = (f"import sys, time; sys.path[:0] = {sys.path!r}\n"
              "from shipline import lock; from shipline.executors.local import LocalExecutor; from shipline.layout import HostLayout\n"
              f"lock.acquire(LocalExecutor(), HostLayout({str(tmp_path)!r}, 'shop'), holder='doomed', commit='x', ttl=600, wait=0)\n"
              "print('held', flush=True); time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    start = time.monotonic()
    held = take(tmp_path, "next", wait=10)
    assert time.monotonic() - start < 10
    held.release()


def test_the_expiry_is_a_backstop_and_a_holder_that_outlives_it_notices(tmp_path: Path) -> None:
    held = take(tmp_path, "slow", ttl=1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            held.check()
        except DeployFailed as exc:
            assert "lock was lost" in exc.message
            break
        time.sleep(0.1)
    else:
        pytest.fail("the holder outlived its expiry")
    take(tmp_path, "next").release()


def test_breaking_stops_a_live_holder_and_reports_a_dead_one(tmp_path: Path) -> None:
    held = take(tmp_path, "hung")
    info = lock.break_lock(LocalExecutor(), layout(tmp_path))
    assert info is not None and info.holder == "hung" and info.alive
    take(tmp_path, "next", wait=5).release()
    held.release()
    note = Path(layout(tmp_path).lock_holder)
    note.write_text(json.dumps({"pid": 2**22 + 12345, "since": 1, "note": {"holder": "ghost", "commit": "c"}}))
    ghost = lock.read(LocalExecutor(), layout(tmp_path))
    assert ghost is not None and not ghost.alive and "its process is gone" in ghost.describe()


def test_a_host_without_flock_gets_a_clear_error(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "mkdir", "cat", "date", "mv", "rm", "timeout"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or tool)
    bare = LocalExecutor(env={"PATH": str(bin_dir)})
    with pytest.raises(DeployFailed, match="flock is not installed"):
        lock.acquire(bare, layout(tmp_path), holder="a", commit="b", ttl=60, wait=0)
