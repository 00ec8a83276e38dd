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


def task(state: str, desired: str = "running", err: str = "") -> dict[str, object]:
    return {"DesiredState": desired, "Status": {"State": state, "Err": err}}


def service(replicas: int | None, update: str = "", message: str = "") -> st.ServiceInfo:
    mode = {"Replicated": {"Replicas": replicas}} if replicas is not None else {"Global": {}}
    return st.ServiceInfo.parse({"ID": "x", "Spec": {"Name": "shop_db", "Mode": mode, "Labels": {"a": "b"}},
                                 "UpdateStatus": {"State": update, "Message": message}})


def test_a_service_updated_in_place_converges_once_its_update_is_done_and_its_tasks_run() -> None:
    assert st.converged(service(1, "updating"), [task("running")]) == ("waiting", "Swarm is updating it")
    assert st.converged(service(1, "completed"), [task("running"), task("shutdown", "shutdown")]) == ("healthy", "")
    kind, reason = st.converged(service(1, "rollback_completed", "update paused due to failure"), [task("running")])
    assert kind == "failed" and "rollback completed: update paused due to failure" in reason
    assert st.converged(service(None), [task("running"), task("starting")])[0] == "waiting", "global: every node's task"
    assert st.converged(service(2), [task("failed", "shutdown"), task("running"), task("running")]) == ("healthy", ""), \
        "an old task that failed before this deploy does not fail a service Swarm keeps running"


def test_a_one_off_service_is_done_when_its_task_completed_and_failed_when_it_exited_otherwise() -> None:
    assert st.oneoff_verdict([task("complete", "shutdown")]) == ("healthy", "")
    assert st.oneoff_verdict([task("running")]) == ("waiting", "task running")
    assert st.oneoff_verdict([]) == ("waiting", "task none yet")
    assert st.oneoff_verdict([task("failed", "shutdown", "task: non-zero exit (1)")]) == (
        "failed", "its task failed: task: non-zero exit (1)")


def test_a_service_parses_its_replicas_labels_and_update_state() -> None:
    info = service(3, "updating")
    assert (info.name, info.replicas, info.label("a"), info.label("none"), info.update_state) == ("shop_db", 3, "b", "", "updating")
    assert service(None).replicas is None
