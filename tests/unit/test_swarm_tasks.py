import json
from pathlib import Path

from shipline import swarm_tasks as st

# `docker inspect` of the tasks of two services on the test swarm (Docker 20.10): `ok` (2 replicas, healthy)
# and `bad` (exits with status 3, restarted by Swarm).
TASKS = json.loads((Path(__file__).parent / "data" / "swarm-tasks.json").read_text())
OK = [t for t in TASKS if t["Status"]["State"] == "running"]
BAD = [t for t in TASKS if t["ServiceID"] != OK[0]["ServiceID"]]


def test_running_replicas_are_healthy_and_fewer_are_waiting() -> None:
    assert st.verdict(OK, 2) == ("healthy", "")
    kind, reason = st.verdict(OK, 3)
    assert kind == "waiting" and "2 of 3 task(s) running" in reason


def test_a_failed_task_of_a_new_service_fails_at_once_with_its_error() -> None:
    assert st.verdict(BAD, 1) == ("failed", "a task failed: task: non-zero exit (3)")


def test_addresses_of_running_tasks_on_the_shared_network() -> None:
    assert st.addresses(OK, "rec_web", 8000) == ["10.0.5.2:8000", "10.0.5.3:8000"]
    assert st.addresses(OK, "other", 8000) == []
    assert st.addresses(BAD, "rec_web", 8000) == [], "failed and not yet running tasks get no traffic"
