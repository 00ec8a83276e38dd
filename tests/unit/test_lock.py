import json

import pytest

from shipline import lock
from shipline.errors import LockedError
from shipline.layout import HostLayout

from .fakes import FakeExecutor

LAYOUT = HostLayout(".shipline", "shop")


class LockHost(FakeExecutor):
    """mkdir is atomic: it fails when the directory exists, like on a real host."""

    def __init__(self) -> None:
        self.dirs: set[str] = set()
        super().__init__([self._fs])

    def _fs(self, argv: list[str]) -> tuple[int, str] | None:
        if argv[:1] == ["mkdir"] and "-p" not in argv:
            if argv[1] in self.dirs:
                return 1, "mkdir: File exists"
            self.dirs.add(argv[1])
            return 0, ""
        if argv[:2] == ["rm", "-rf"]:
            self.dirs.discard(argv[2])
            self.files = {k: v for k, v in self.files.items() if not k.startswith(argv[2] + "/")}
            return 0, ""
        if argv[:2] == ["test", "-d"]:
            return (0 if argv[2] in self.dirs else 1), ""
        return None


def test_acquire_writes_who_holds_it() -> None:
    host = LockHost()
    lock.acquire(host, LAYOUT, holder="ci", commit="abc1234", ttl=600, wait=0, clock=lambda: 1000.0)
    note = json.loads(host.files[".shipline/shop/lock/info.json"][0])
    assert note == {"holder": "ci", "commit": "abc1234", "created": 1000.0, "expires": 1600.0}


def test_second_deploy_is_refused_with_the_holder_named() -> None:
    host = LockHost()
    lock.acquire(host, LAYOUT, holder="alice", commit="abc1234", ttl=600, wait=0, clock=lambda: 1000.0)
    with pytest.raises(LockedError, match="held by alice deploying abc1234"):
        lock.acquire(host, LAYOUT, holder="bob", commit="def5678", ttl=600, wait=0, clock=lambda: 1001.0)


def test_waits_for_the_holder_then_takes_it() -> None:
    host = LockHost()
    lock.acquire(host, LAYOUT, holder="alice", commit="a", ttl=600, wait=0, clock=lambda: 1000.0)
    t = [1000.0]

    def sleep(s: float) -> None:
        t[0] += s
        if t[0] >= 1003:
            lock.release(host, LAYOUT)

    lock.acquire(host, LAYOUT, holder="bob", commit="b", ttl=600, wait=30, clock=lambda: t[0], sleep=sleep)
    assert json.loads(host.files[".shipline/shop/lock/info.json"][0])["holder"] == "bob"


def test_expired_lock_is_broken() -> None:
    host = LockHost()
    lock.acquire(host, LAYOUT, holder="killed", commit="a", ttl=60, wait=0, clock=lambda: 1000.0)
    lock.acquire(host, LAYOUT, holder="next", commit="b", ttl=60, wait=0, clock=lambda: 1061.0)
    assert json.loads(host.files[".shipline/shop/lock/info.json"][0])["holder"] == "next"
