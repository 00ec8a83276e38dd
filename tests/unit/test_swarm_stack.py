import subprocess
from pathlib import Path

import pytest

from shipline import swarm_stack as ss
from shipline.layout import RELEASE_LABEL
from shipline.swarm_plan import SwarmPlan

from .swarm_projects import swarm_project

IMAGES = {"backend": "r/shop/backend:abc1234", "frontend": "r/shop/frontend:abc1234", "worker": "r/shop/backend:abc1234"}
PATHS = ss.Paths("/home/deploy/.shipline/shop/releases/12", "/home/deploy/.shipline/shop/releases/12/src/app")


@pytest.fixture
def plan(tmp_path: Path) -> SwarmPlan:
    sp = swarm_project(tmp_path).swarm
    assert sp is not None
    return sp


def release(sp: SwarmPlan, password: bytes = b"s3cret") -> ss.SwarmRelease:
    return ss.SwarmRelease(sp, ss.object_names(sp, {"secrets.db_password": password}))


def test_built_services_get_one_swarm_service_per_release_under_their_name_as_alias(plan: SwarmPlan) -> None:
    stack = release(plan).release(12, IMAGES, PATHS)
    assert stack["version"] == "3.8"
    assert set(stack["services"]) == {"proxy", "db", "backend-r12", "frontend-r12", "worker-r12"}
    backend = stack["services"]["backend-r12"]
    assert backend["image"] == "r/shop/backend:abc1234"
    assert backend["networks"] == {"web": {"aliases": ["backend"]}, "data": {"aliases": ["api", "backend"]}}
    assert stack["services"]["worker-r12"]["networks"] == {"default": {"aliases": ["worker"]}}
    assert backend["deploy"]["labels"] == {"team": "shop", ss.APP_LABEL: "shop", ss.SERVICE_LABEL: "backend",
                                           RELEASE_LABEL: "12", ss.KIND_LABEL: "release"}
    assert backend["deploy"]["replicas"] == 3 and backend["deploy"]["endpoint_mode"] == "dnsrr"
    assert backend["stop_grace_period"] == "20s", "deploy.services.backend.stop_timeout"
    assert not {"build", "depends_on", "mem_limit"} & set(backend), "keys a stack file cannot carry are left out"
    assert backend["environment"]["MODE"] == "${MODE:-prod}", "docker stack deploy interpolates, from stack.env"
    assert backend["env_file"] == [f"{PATHS.project_dir}/backend.env"], "absolute on the manager; the optional one dropped"


def test_services_updated_in_place_keep_their_names_and_only_the_apps_labels(plan: SwarmPlan) -> None:
    stack = release(plan).release(12, IMAGES, PATHS)
    proxy, db = stack["services"]["proxy"], stack["services"]["db"]
    assert "restart" not in proxy and proxy["deploy"]["mode"] == "global"
    assert proxy["deploy"]["labels"] == {ss.APP_LABEL: "shop", ss.SERVICE_LABEL: "proxy"}, "no release number"
    assert db["deploy"]["placement"] == {"constraints": ["node.labels.db == true"]}
    base = release(plan).base(PATHS)
    assert set(base["services"]) == {"proxy", "db"} and base["services"]["db"] == db
    assert stack["volumes"] == {"pgdata": {}} and stack["networks"]["data"] == {"driver": "overlay", "internal": True}
    assert plan.compose["services"]["backend"]["build"] == "./backend", "the plan's Compose data untouched"


def test_a_secret_is_a_swarm_object_named_by_its_contents_digest(plan: SwarmPlan) -> None:
    one = release(plan).release(12, IMAGES, PATHS)["secrets"]["db_password"]
    same = release(plan).release(13, IMAGES, PATHS)["secrets"]["db_password"]
    other = release(plan, b"rotated").release(12, IMAGES, PATHS)["secrets"]["db_password"]
    assert one["file"] == f"{PATHS.release_dir}/{ss.OBJECTS_DIR}/secrets-db_password"
    assert one["name"].startswith("shop_db_password-") and one["name"] == same["name"] != other["name"]
    long = ss.object_names(plan, {"configs." + "x" * 80: b""})
    assert all(len(n) <= 64 for n in long.values()), "Swarm refuses longer names"
    assert ss.object_sources(plan) == {"secrets.db_password": ("environment", "POSTGRES_PASSWORD")}


def test_the_migration_is_a_one_off_service_of_the_new_image_with_the_services_networks(plan: SwarmPlan) -> None:
    stack = release(plan).oneoff(12, "migrate", IMAGES, PATHS)
    assert list(stack["services"]) == ["migrate-r12"]
    job = stack["services"]["migrate-r12"]
    assert job["command"] == ["sh", "-c", "python -m app.migrate"] and job["image"] == "r/shop/backend:abc1234"
    assert job["deploy"]["replicas"] == 1 and job["deploy"]["restart_policy"] == {"condition": "none"}
    assert job["deploy"]["labels"][ss.KIND_LABEL] == "oneoff" and job["deploy"]["labels"][RELEASE_LABEL] == "12"
    assert job["healthcheck"] == {"disable": True} and "ports" not in job
    assert job["networks"] == {"web": {}, "data": {"aliases": ["api"]}}, "no alias: nothing may route to it"
    assert job["secrets"] == ["db_password"] and "secrets" in stack
    assert release(plan).oneoffs() == ["migrate"]


def test_a_release_renders_the_same_after_a_round_trip_through_its_file(plan: SwarmPlan) -> None:
    original = release(plan)
    again = ss.SwarmRelease.from_json(original.to_json())
    assert again == original
    assert again.release(7, IMAGES, PATHS) == original.release(7, IMAGES, PATHS)
    assert again.oneoff(7, "migrate", IMAGES, PATHS) == original.oneoff(7, "migrate", IMAGES, PATHS)


def test_keys_a_stack_file_cannot_carry_are_named_for_the_plan(plan: SwarmPlan) -> None:
    assert ss.ignored_keys(plan) == {"backend": ["mem_limit"]}


def test_stack_values_take_shiplines_own_over_secrets_over_env_over_the_committed_dotenv(plan: SwarmPlan) -> None:
    sp = SwarmPlan(**{**plan.__dict__, "defaults": {"A": "dotenv", "B": "dotenv", "C": "dotenv", "D": "dotenv"}})
    values = ss.stack_values(sp, {"B": "env", "C": "env", "D": "env"}, {"C": "secret", "D": "secret"}, {"D": "own"})
    assert values == {"A": "dotenv", "B": "env", "C": "secret", "D": "own"}


def test_stack_env_is_read_back_exactly_by_a_posix_shell() -> None:
    values = {"A": "plain", "B": "it's $HOME `x` \\ \"q\"", "C": "two\nlines"}
    script = ss.stack_env(values) + 'printf "%s\\0" "$A" "$B" "$C"'
    out = subprocess.run(["sh", "-c", script], capture_output=True, check=True).stdout
    assert out.split(b"\0")[:3] == [v.encode() for v in values.values()]
