import json

import pytest

from shipline.errors import DeployFailed
from shipline.health import container_verdict, wait_healthy

from .fakes import FakeExecutor, state


def info(status: str = "running", health: str | None = "healthy", exit_code: int = 0, restarts: int = 0) -> dict[str, object]:
    return {"State": json.loads(state(status, health, exit_code)), "RestartCount": restarts}


@pytest.mark.parametrize(("data", "verdict"), [
    (info("running", "healthy"), "healthy"),
    (info("running", "starting"), "waiting"),
    (info("running", "unhealthy"), "failed"),
    (info("exited", None, 3), "failed"),
    (info("running", None), "healthy"),
    (info("restarting", None, 1), "failed"),
    (info("running", "starting", restarts=2), "failed"),
    (info("created", None), "waiting"),
])
def test_container_verdict(data: dict[str, object], verdict: str) -> None:
    assert container_verdict(data)[0] == verdict


def test_unhealthy_reason_carries_the_probe_output() -> None:
    assert "probe said no" in container_verdict(info("running", "unhealthy"))[1]


def test_crash_loop_is_named() -> None:
    assert "crashed" in container_verdict(info("running", "starting", 1, restarts=1))[1]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def inspecting(*answers: dict[str, object]) -> FakeExecutor:
    it = iter(answers)
    return FakeExecutor([lambda a: (0, json.dumps(next(it))) if a[:2] == ["docker", "inspect"] else None])


def test_waits_through_starting_until_healthy() -> None:
    ex = inspecting(info("running", "starting"), info("running", "starting"), info("running", "healthy"))
    clock = Clock()
    waited = wait_healthy(ex, ["c1"], "backend", 30, clock=clock, sleep=clock.sleep, interval=0.5)
    assert waited == 1.0
    assert [c[-1] for c in ex.ran("inspect")] == ["c1", "c1", "c1"]


def test_times_out_with_the_last_reason() -> None:
    ex = FakeExecutor([lambda a: (0, json.dumps(info("running", "starting"))) if "inspect" in a else None])
    clock = Clock()
    with pytest.raises(DeployFailed, match=r"within 5s \(health starting\)"):
        wait_healthy(ex, ["c1"], "backend", 5, clock=clock, sleep=clock.sleep)
    assert clock.t == 5.0


def test_unhealthy_fails_before_the_timeout() -> None:
    ex = inspecting(info("running", "unhealthy"))
    clock = Clock()
    with pytest.raises(DeployFailed, match="health check failing"):
        wait_healthy(ex, ["c1"], "backend", 60, clock=clock, sleep=clock.sleep)
    assert clock.t == 0.0


def test_no_container_is_a_failure() -> None:
    with pytest.raises(DeployFailed, match="no container"):
        wait_healthy(FakeExecutor(), [], "backend", 60)
