import json
from io import StringIO

import pytest
from rich.console import Console

from shipline import swarm
from shipline.config import Host
from shipline.errors import DeployFailed
from shipline.reporter import Reporter
from shipline.secrets import Masker

from .fakes import FakeExecutor

HOSTS = [Host(address=f"deploy@203.0.113.{i}") for i in (1, 2, 3, 4)]
INACTIVE = swarm.NodeState("inactive")


def member(cluster: str = "c1", manager: bool = True) -> swarm.NodeState:
    return swarm.NodeState("active", node_id="n", cluster_id=cluster, manager=manager)


def kinds(actions: list[swarm.Action]) -> list[str]:
    return [a.kind for a in actions]


def test_fresh_hosts_first_inits_then_managers_then_workers() -> None:
    assert kinds(swarm.plan_init(HOSTS, [INACTIVE] * 4, managers=3)) == [
        "init", "join-manager", "join-manager", "join-worker"]
    assert kinds(swarm.plan_init(HOSTS[:3], [INACTIVE] * 3, managers=1)) == ["init", "join-worker", "join-worker"]


def test_members_of_this_swarm_are_kept_and_missing_ones_join() -> None:
    actions = swarm.plan_init(HOSTS[:3], [member(), member(manager=False), INACTIVE], managers=3)
    assert kinds(actions) == ["keep", "keep", "join-manager"]
    assert actions[1].reason == "already a worker of this swarm"


def test_a_host_in_another_swarm_is_refused_not_moved() -> None:
    with pytest.raises(DeployFailed, match=r"203\.0\.113\.2 belongs to another swarm.*docker swarm leave"):
        swarm.plan_init(HOSTS[:2], [member("c1"), member("c2")], managers=1)


def test_a_worker_cannot_lead_and_managers_must_be_odd() -> None:
    with pytest.raises(DeployFailed, match="must be a manager"):
        swarm.plan_init(HOSTS[:2], [member(manager=False), INACTIVE], managers=1)
    with pytest.raises(DeployFailed, match="odd number"):
        swarm.plan_init(HOSTS[:2], [INACTIVE, INACTIVE], managers=2)


def test_state_is_read_from_docker_info() -> None:
    info = {"LocalNodeState": "active", "NodeID": "abc", "ControlAvailable": True, "Cluster": {"ID": "xyz"}}
    assert swarm.NodeState.parse(json.dumps(info)) == swarm.NodeState("active", "abc", "xyz", True)
    assert swarm.NodeState.parse(json.dumps({"LocalNodeState": "inactive", "Cluster": None})) == INACTIVE


def test_commands_advertise_ip_addresses_and_leave_names_to_docker() -> None:
    assert swarm.init_argv(HOSTS[0]) == ["docker", "swarm", "init", "--advertise-addr", "203.0.113.1"]
    assert swarm.init_argv(Host(address="deploy@vps.example.com")) == ["docker", "swarm", "init"]
    assert swarm.join_argv(HOSTS[1], "SWMTKN-1-x", HOSTS[0]) == [
        "docker", "swarm", "join", "--token", "SWMTKN-1-x", "--advertise-addr", "203.0.113.2", "203.0.113.1:2377"]


def test_apply_joins_with_the_leaders_token_and_never_prints_it() -> None:
    token = "SWMTKN-1-supersecret-token"
    inactive = json.dumps({"LocalNodeState": "inactive"})
    leader = FakeExecutor([lambda a: (0, inactive) if a[:2] == ["docker", "info"] else None,
                           lambda a: (0, token + "\n") if "join-token" in a else None])
    other = FakeExecutor([lambda a: (0, inactive) if a[:2] == ["docker", "info"] else None,
                          lambda a: (0, f"joined with {token}\n") if "join" in a else None])
    out, masker = StringIO(), Masker()
    report = Reporter(Console(file=out, width=200), masker)
    swarm.apply([leader, other], HOSTS[:2], 1, report, masker)
    assert leader.ran("swarm", "init")
    assert other.ran("swarm", "join", token)
    assert token not in out.getvalue() and "joined as a worker" in out.getvalue()
