import json

import pytest

from shipline.errors import DeployFailed
from shipline.health import (
    PROBE_MAX_INTERVAL,
    compose_probe,
    container_verdict,
    exec_probe,
    probe_command,
    probe_interval,
    probe_timeout,
    wait_healthy,
    wait_ready,
)

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
    assert 5.0 <= clock.t <= 5.1 + 1e-9  # gave up at the timeout, at most one interval (0.1 s) late


def test_unhealthy_fails_before_the_timeout() -> None:
    ex = inspecting(info("running", "unhealthy"))
    clock = Clock()
    with pytest.raises(DeployFailed, match="health check failing"):
        wait_healthy(ex, ["c1"], "backend", 60, clock=clock, sleep=clock.sleep)
    assert clock.t == 0.0


def test_no_container_is_a_failure() -> None:
    with pytest.raises(DeployFailed, match="no container"):
        wait_healthy(FakeExecutor(), [], "backend", 60)


# -- readiness probes: the service's own check, run in the container between Docker's ticks ----------------


@pytest.mark.parametrize(("test", "shell", "argv"), [
    (["CMD", "curl", "-f", "http://127.0.0.1/"], None, ["curl", "-f", "http://127.0.0.1/"]),
    (["CMD-SHELL", "pg_isready -U $$USER"], None, ["/bin/sh", "-c", "pg_isready -U $$USER"]),
    (["CMD-SHELL", "pg_isready"], ["/bin/bash", "-o", "pipefail", "-c"], ["/bin/bash", "-o", "pipefail", "-c", "pg_isready"]),
    ("wget -q -O- localhost", None, ["/bin/sh", "-c", "wget -q -O- localhost"]),  # Compose's string form
    (["NONE"], None, None),
    ([], None, None),
    (None, None, None),
    (["CMD"], None, None),  # Docker refuses an empty command; so do we
])
def test_probe_command_from_every_healthcheck_form(test: object, shell: list[str] | None, argv: list[str] | None) -> None:
    assert probe_command(test, shell) == argv  # type: ignore[arg-type]


def test_compose_healthcheck_disable_and_missing_test() -> None:
    assert compose_probe({"test": ["CMD", "true"], "interval": "2s"}) == ["true"]
    assert compose_probe({"test": ["CMD", "true"], "disable": True}) is None
    assert compose_probe({"interval": "2s"}) is None
    assert compose_probe(None) is None


def test_probe_intervals_start_short_grow_and_stay_bounded() -> None:
    intervals = [probe_interval(n) for n in range(12)]
    assert intervals[0] <= 0.25 and intervals == sorted(intervals)
    assert max(intervals) == PROBE_MAX_INTERVAL
    assert probe_interval(10, docker_interval=0.5) == 0.5  # never slower than Docker itself


def test_probe_timeout_is_the_checks_own_and_bounded() -> None:
    assert probe_timeout({"Timeout": 3_000_000_000}) == 3.0
    assert probe_timeout({}) == 10.0 and probe_timeout(None) == 10.0  # Docker's 30 s default, capped
    assert exec_probe("c1", ["true"], 3.0) == ["timeout", "--kill-after=1", "3", "docker", "exec", "c1", "true"]


def probing(health: list[str], probes: list[int], check: object = ("CMD", "ready")) -> FakeExecutor:
    """Docker reports `health` (one per inspection, the last repeats); probes exit with `probes` in turn."""
    states, codes = iter(health), iter(probes)
    last = {"h": health[0]}

    def rule(argv: list[str]) -> tuple[int, str] | None:
        if argv[:2] == ["docker", "inspect"]:
            last["h"] = next(states, last["h"])
            if "Healthcheck" not in argv[3]:
                return 0, json.dumps(info("running", last["h"]))
            hc = {"Test": list(check), "Timeout": 2_000_000_000} if check else None
            return 0, "WARNING: a line docker may print first\n" + json.dumps(
                {**info("running", last["h"]), "Healthcheck": hc, "Shell": None})
        if "exec" in argv:
            return next(codes, 1), ""
        return None

    return FakeExecutor([rule])


def test_ready_as_soon_as_the_probe_passes_not_at_dockers_next_tick() -> None:
    ex = probing(["starting"], [1, 1, 0])
    clock = Clock()
    waited = wait_ready(ex, ["c1"], "backend", 30, clock=clock, sleep=clock.sleep)
    assert waited == pytest.approx(probe_interval(0) + probe_interval(1))
    assert ex.ran("exec")[0] == ["timeout", "--kill-after=1", "2", "docker", "exec", "c1", "ready"]
    assert len(ex.ran("exec")) == 3


def test_docker_saying_healthy_is_ready_without_a_probe() -> None:
    ex = probing(["healthy"], [1], check=None)
    assert wait_ready(ex, ["c1"], "backend", 30, clock=Clock(), sleep=lambda s: None) == 0.0
    assert ex.ran("exec") == []


def test_a_failing_probe_is_not_a_verdict_but_docker_unhealthy_is() -> None:
    ex = probing(["starting", "starting", "unhealthy"], [1, 1, 1])
    clock = Clock()
    with pytest.raises(DeployFailed, match="health check failing"):
        wait_ready(ex, ["c1"], "backend", 30, clock=clock, sleep=clock.sleep)


def test_without_any_check_waits_for_docker_until_the_timeout() -> None:
    ex = probing(["starting"], [], check=("NONE",))
    clock = Clock()
    with pytest.raises(DeployFailed, match=r"backend did not become healthy within 5s"):
        wait_ready(ex, ["c1"], "backend", 5, clock=clock, sleep=clock.sleep)
    assert ex.ran("exec") == []
    assert clock.t >= 5


def test_every_container_must_be_ready() -> None:
    ex = probing(["starting"], [0, 1, 0])
    clock = Clock()
    wait_ready(ex, ["c1", "c2"], "backend", 30, clock=clock, sleep=clock.sleep)
    assert [c[-2] for c in ex.ran("exec")] == ["c1", "c2", "c2"]
