import json

import pytest

from shipline.errors import DeployFailed
from shipline.health import container_verdict, wait_healthy

from .fakes import FakeExecutor, state


@pytest.mark.parametrize(("st", "verdict"), [
    (json.loads(state("running", "healthy")), "healthy"),
    (json.loads(state("running", "starting")), "waiting"),
    (json.loads(state("running", "unhealthy")), "failed"),
    (json.loads(state("exited", None, 3)), "failed"),
    (json.loads(state("running", None)), "healthy"),
    (json.loads(state("restarting", None)), "waiting"),
])
def test_container_verdict(st: dict[str, object], verdict: str) -> None:
    assert container_verdict(st)[0] == verdict


def test_unhealthy_reason_carries_the_probe_output() -> None:
    assert "probe said no" in container_verdict(json.loads(state("running", "unhealthy")))[1]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_waits_through_starting_until_healthy() -> None:
    answers = iter([state("running", "starting"), state("running", "starting"), state("running", "healthy")])
    ex = FakeExecutor([lambda a: (0, "c1\n") if "ps" in a else None,
                       lambda a: (0, next(answers)) if a[:2] == ["docker", "inspect"] else None])
    clock = Clock()
    waited = wait_healthy(ex, ["docker", "compose"], "backend", 30, clock=clock, sleep=clock.sleep)
    assert waited == 1.0
    assert len(ex.ran("inspect")) == 3


def test_times_out_with_the_last_reason() -> None:
    ex = FakeExecutor([lambda a: (0, "c1\n") if "ps" in a else None,
                       lambda a: (0, state("running", "starting")) if "inspect" in a else None])
    clock = Clock()
    with pytest.raises(DeployFailed, match=r"within 5s \(health starting\)"):
        wait_healthy(ex, ["docker", "compose"], "backend", 5, clock=clock, sleep=clock.sleep)
    assert clock.t == 5.0


def test_unhealthy_fails_before_the_timeout() -> None:
    ex = FakeExecutor([lambda a: (0, "c1\n") if "ps" in a else None,
                       lambda a: (0, state("running", "unhealthy")) if "inspect" in a else None])
    clock = Clock()
    with pytest.raises(DeployFailed, match="health check failing"):
        wait_healthy(ex, ["docker", "compose"], "backend", 60, clock=clock, sleep=clock.sleep)
    assert clock.t == 0.0
