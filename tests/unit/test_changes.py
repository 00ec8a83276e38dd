import copy
from typing import Any

from shipline.changes import ServiceState, change_reason, mounted_files, normalised, service_states

REL7 = "/home/deploy/.shipline/shop/releases/7"
REL8 = "/home/deploy/.shipline/shop/releases/8"


def config(release: str, *, backend_tag: str = "abc1234", label: str = "7", nginx: str = "nginx.conf") -> dict[str, Any]:
    """`docker compose config --format json` of a release, as Compose 2.26 prints it (abridged)."""
    return {
        "name": "shop",
        "networks": {"web": {"name": "shop_web", "ipam": {}}, "data": {"name": "shop_data", "internal": True}},
        "volumes": {"pgdata": {"name": "shop_pgdata"}},
        "services": {
            "backend": {
                "build": {"context": f"{release}/backend", "args": {"GIT_SHA": "dev"}},
                "depends_on": {"db": {"condition": "service_healthy", "required": True}},
                "environment": {"DATABASE_HOST": "db", "LOG_LEVEL": "info"},
                "image": f"127.0.0.1:5000/shop/backend:{backend_tag}",
                "labels": {"dev.shipline.release": label},
                "networks": {"data": None, "web": None},
            },
            "db": {"image": "postgres:15", "networks": {"data": None},
                   "volumes": [{"type": "volume", "source": "pgdata", "target": "/var/lib/postgresql/data"}]},
            "nginx": {"image": "nginx:1", "networks": {"web": None},
                      "volumes": [{"type": "bind", "source": f"{release}/{nginx}", "target": "/etc/nginx/nginx.conf"}]},
        },
    }


IDS = {"backend": "sha256:b1", "db": "sha256:d1", "nginx": "sha256:n1"}
FILES = {"docker-compose.yml": "c1", "nginx.conf": "f1", "conf.d/a.conf": "f2"}


def test_a_new_release_directory_tag_and_release_label_change_nothing() -> None:
    live = service_states(config(REL7), REL7, IDS, FILES)
    new = service_states(config(REL8, backend_tag="def5678", label="8"), REL8, IDS, FILES)
    assert new == live
    assert all(change_reason(new[s], live[s]) is None for s in new)


def test_each_part_is_named_in_the_reason() -> None:
    live = service_states(config(REL7), REL7, IDS, FILES)
    image = service_states(config(REL8), REL8, {**IDS, "backend": "sha256:b2"}, FILES)
    assert change_reason(image["backend"], live["backend"]) == "image changed"
    env = config(REL8)
    env["services"]["backend"]["environment"]["LOG_LEVEL"] = "debug"
    assert change_reason(service_states(env, REL8, IDS, FILES)["backend"], live["backend"]) == "definition changed"
    files = service_states(config(REL8), REL8, IDS, {**FILES, "nginx.conf": "f9"})
    assert change_reason(files["nginx"], live["nginx"]) == "mounted files changed"
    assert change_reason(files["backend"], live["backend"]) is None  # it mounts no file of the release
    assert change_reason(live["db"], None) == "not in the live release"
    assert change_reason(live["db"], live["db"], running=False) == "no running container"
    assert change_reason(ServiceState("", "x", ""), live["db"]) == "image not on the host"


def test_a_changed_network_or_volume_definition_changes_its_users_only() -> None:
    live = service_states(config(REL7), REL7, IDS, FILES)
    changed = config(REL8)
    changed["volumes"]["pgdata"]["driver_opts"] = {"type": "tmpfs"}
    new = service_states(changed, REL8, IDS, FILES)
    assert change_reason(new["db"], live["db"]) == "definition changed"
    assert change_reason(new["backend"], live["backend"]) is None


def test_mounted_directories_count_every_file_under_them() -> None:
    definition = normalised(config(REL7, nginx="conf.d"), "nginx", REL7)
    assert mounted_files(definition, FILES) == {"conf.d/a.conf": "f2"}


def test_states_round_trip_through_the_ledger() -> None:
    state = ServiceState("sha256:b1", "d" * 64, "")
    assert ServiceState.from_dict(copy.deepcopy(state.as_dict())) == state
    assert ServiceState.from_dict({"image": "x"}) is None and ServiceState.from_dict(None) is None
