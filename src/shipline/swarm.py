"""`shipline swarm init`: turn the configured hosts into one Docker Swarm over SSH, idempotently.

The first host initialises the swarm (or already leads it); the next ones join as managers up to `managers`
(an odd number keeps a quorum), the rest as workers. A host already in this swarm is left alone; a host in
another swarm is an error, never silently moved. Deciding is a pure function of each host's `docker info`, so
it is tested without Docker; only `apply` runs commands.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass

from .config import Host
from .errors import DeployFailed
from .executors.base import Executor
from .reporter import Reporter
from .secrets import Masker, Secret

SWARM_PORT = 2377


@dataclass(frozen=True)
class NodeState:
    """What `docker info` says about a host's swarm membership."""

    state: str  # inactive | pending | active | error | locked
    node_id: str = ""
    cluster_id: str = ""
    manager: bool = False

    @classmethod
    def parse(cls, info_json: str) -> NodeState:
        swarm = json.loads(info_json) or {}
        cluster = swarm.get("Cluster") or {}
        return cls(state=str(swarm.get("LocalNodeState") or "inactive"), node_id=str(swarm.get("NodeID") or ""),
                   cluster_id=str(cluster.get("ID") or ""), manager=bool(swarm.get("ControlAvailable")))


@dataclass(frozen=True)
class Action:
    """What `swarm init` does on one host: `init`, `join-manager`, `join-worker` or `keep`."""

    host: Host
    kind: str
    reason: str = ""


def advertise_address(host: Host) -> str | None:
    """The address other nodes reach this one at: the host's IP if `address` names one, else Docker's choice."""
    try:
        return str(ipaddress.ip_address(host.hostname))
    except ValueError:
        return None


def plan_init(hosts: Sequence[Host], states: Sequence[NodeState], managers: int) -> list[Action]:
    """Per host, what to do so that all of them form one swarm led by the first; raises on a conflict."""
    if managers < 1 or managers % 2 == 0:
        raise DeployFailed(f"--managers {managers}: give an odd number (1, 3, 5): a swarm keeps working while a "
                           "majority of its managers is up.")
    first, lead = hosts[0], states[0]
    actions = []
    if lead.state == "active" and not lead.manager:
        raise DeployFailed(f"{first.address} is a worker in a swarm; the first host must be a manager (or no "
                           "swarm member): list a manager first, or run `docker swarm leave` on it.")
    if lead.state not in ("active", "inactive"):
        raise DeployFailed(f"{first.address}: its swarm state is {lead.state!r}; fix it there (`docker info`).")
    actions.append(Action(first, "keep" if lead.state == "active" else "init",
                          "already a manager of this swarm" if lead.state == "active" else ""))
    for position, (host, st) in enumerate(zip(hosts[1:], states[1:], strict=True), start=1):
        role = "manager" if position < managers else "worker"
        if st.state == "active" and lead.state == "active" and st.cluster_id == lead.cluster_id:
            actions.append(Action(host, "keep", f"already a {'manager' if st.manager else 'worker'} of this swarm"))
        elif st.state == "inactive":
            actions.append(Action(host, f"join-{role}"))
        elif st.state == "active":
            raise DeployFailed(f"{host.address} belongs to another swarm (cluster {st.cluster_id[:12]}); shipline "
                               "does not move servers between swarms. Run `docker swarm leave` there first if "
                               "that is what you want.")
        else:
            raise DeployFailed(f"{host.address}: its swarm state is {st.state!r}; fix it there (`docker info`).")
    return actions


def info_argv() -> list[str]:
    return ["docker", "info", "--format", "{{json .Swarm}}"]


def init_argv(host: Host) -> list[str]:
    addr = advertise_address(host)
    return ["docker", "swarm", "init", *(["--advertise-addr", addr] if addr else [])]


def join_token_argv(role: str) -> list[str]:
    return ["docker", "swarm", "join-token", "--quiet", role]


def join_argv(host: Host, token: str, leader: Host) -> list[str]:
    """The token is in argv because `docker swarm join` takes it nowhere else; shipline masks it in output."""
    addr = advertise_address(host)
    return ["docker", "swarm", "join", "--token", token, *(["--advertise-addr", addr] if addr else []),
            f"{leader.hostname}:{SWARM_PORT}"]


def nodes_argv() -> list[str]:
    return ["docker", "node", "ls", "--format", "{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}"]


def node_state(ex: Executor) -> NodeState:
    return NodeState.parse(ex.run(info_argv()).check(f"{ex.name}: docker info").output)


def apply(executors: Sequence[Executor], hosts: Sequence[Host], managers: int, report: Reporter,
          masker: Masker) -> list[Action]:
    """Run `plan_init` against the hosts' current state and carry it out; returns what was done."""
    actions = plan_init(hosts, [node_state(ex) for ex in executors], managers)
    leader_ex, leader = executors[0], hosts[0]
    tokens: dict[str, str] = {}
    for ex, action in zip(executors, actions, strict=True):
        if action.kind == "keep":
            report.info(f"{ex.name}: {action.reason}")
            continue
        if action.kind == "init":
            ex.run(init_argv(action.host), on_line=report.sink(ex.name)).check(f"{ex.name}: docker swarm init")
            report.info(f"{ex.name}: swarm initialised, this host is its first manager")
            continue
        role = action.kind.removeprefix("join-")
        if role not in tokens:
            token = leader_ex.run(join_token_argv(role)).check(f"{leader_ex.name}: join token").output.strip()
            masker.add(Secret(f"swarm {role} join token", token))  # a join token lets any machine into the swarm: never print it
            tokens[role] = token
        ex.run(join_argv(action.host, tokens[role], leader), on_line=report.sink(ex.name)).check(
            f"{ex.name}: docker swarm join")
        report.info(f"{ex.name}: joined as a {role}")
    return actions
