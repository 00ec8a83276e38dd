import posixpath
from datetime import UTC, datetime
from pathlib import Path

import yaml

from shipline.compose import load_project as load_compose
from shipline.layout import ComposeCall
from shipline.plan import DeployPlan, ServiceRollout, Trigger, compile_plan
from shipline.project import load_project
from shipline.release_files import FileBlob, env_file, override_file, quote, render
from shipline.traefik_labels import label_routing

from .trees import MemoryTree

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"

ROLLOUT = (ServiceRollout("db", False, 60), ServiceRollout("backend", True, 60, strategy="zero-downtime", port=8000),
           ServiceRollout("worker", False, 60, strategy="start-first"))


def test_override_pins_images_and_labels_side_by_side_services_with_the_release() -> None:
    data = yaml.safe_load(override_file({"backend": "r/b:1", "web-api": "r/w:1", "web_api": "r/x:1"}, ROLLOUT, 7))
    assert data == {"services": {
        "backend": {"image": "r/b:1", "labels": {"dev.shipline.release": "7"}},
        "web-api": {"image": "r/w:1"},
        "web_api": {"image": "r/x:1"},  # its own image: names that differ only in - and _ never share one
        "worker": {"labels": {"dev.shipline.release": "7"}},
    }}
    assert "db" not in data["services"], "a database's definition never changes with the release number"


def test_env_file_holds_project_proxy_dir_env_and_secrets() -> None:
    text = env_file("shop", "/home/d/.shipline/shop/proxy", {"HTTPS_PORT": "8443"}, {"POSTGRES_PASSWORD": "p$ss word"})
    assert text.splitlines() == ["COMPOSE_PROJECT_NAME=shop", "SHIPLINE_PROXY_DIR=/home/d/.shipline/shop/proxy",
                                 "HTTPS_PORT=8443", 'POSTGRES_PASSWORD="p$$ss word"']


def test_quoting_escapes_what_compose_would_misread() -> None:
    assert quote("plain-value_1.2:3@x/y") == "plain-value_1.2:3@x/y"
    assert quote("ends\\") == '"ends\\\\"'  # single quotes would leave it unterminated
    assert quote("it's") == '"it\'s"'
    assert quote('say "hi"') == '"say \\"hi\\""'
    assert quote("two\nlines") == '"two\\nlines"'
    assert quote("${HOME}") == '"$${HOME}"'


def test_a_blob_never_shows_its_bytes() -> None:
    blob = FileBlob(b"POSTGRES_PASSWORD=s3cret", 0o600)
    assert "s3cret" not in repr(blob) and "s3cret" not in str(blob) and "600" in repr(blob)
    assert blob.digest.startswith("sha256:") and len(blob.digest) == 71


OVERRIDES = """\
services:
  web:
    image: nginx
    volumes: ["./nginx.conf:/etc/nginx/nginx.conf:ro", "./logs:/var/log/nginx:rw", {type: bind, source: ./cache, target: /cache}]
    env_file: [app.env]
  seed: {image: x, profiles: [seed]}
"""


def release(tmp_path: Path, number: int = 4, profiles: str = "") -> tuple[DeployPlan, dict[str, FileBlob]]:
    (tmp_path / "deploy").mkdir(parents=True)
    (tmp_path / "deploy" / "nginx.conf").write_text("events {}\n")
    (tmp_path / "deploy" / "app.env").write_text("A=1\n")
    (tmp_path / "deploy" / ".env").write_text("TAG=1\n")
    (tmp_path / "deploy" / "compose.yaml").write_text(OVERRIDES)
    (tmp_path / "shipline.yml").write_text(f"app: shop\ncompose: deploy/compose.yaml\nregistry: {{url: r.example}}\n"
                                           f"hosts: [{{address: d@h, host_key: '{HOST_KEY}'}}]\n{profiles}")
    project = load_project(tmp_path / "shipline.yml", env={})
    plan = compile_plan(project, Trigger(ref="main", sha="a" * 40, short_sha="aaaaaaa"), datetime(2026, 1, 1, tzinfo=UTC))
    source = {path: (tmp_path / path).read_bytes() for path, _ in plan.deploy.uploads}
    target = plan.deploy.targets[0]
    return plan.deploy, render(plan.deploy, target, number, {}, source, {}, {"actor": "ann"}, "/home/d").files


def test_a_release_carries_the_commits_files_at_their_paths_with_their_modes(tmp_path: Path) -> None:
    _, files = release(tmp_path)
    assert {name: blob.mode for name, blob in files.items() if name.startswith("src/")} == {
        "src/deploy/compose.yaml": 0o644, "src/deploy/nginx.conf": 0o644, "src/deploy/app.env": 0o600,
        "src/deploy/.env": 0o600}
    assert files["src/deploy/nginx.conf"].data == b"events {}\n"
    assert ComposeCall.from_json(files["compose.json"].data) == ComposeCall(
        ("src/deploy/compose.yaml", "shipline.override.yml"), "src/deploy", ("src/deploy/.env", ".env"))


def test_data_mounts_point_at_the_data_directory_the_same_way_in_every_release(tmp_path: Path) -> None:
    _, files = release(tmp_path, 4)
    web = yaml.safe_load(files["shipline.override.yml"].data)["services"]["web"]
    assert web["volumes"] == ["../../../../data/logs:/var/log/nginx:rw",
                              {"type": "bind", "source": "../../../../data/cache", "target": "/cache"}]
    # from .shipline/shop/releases/4/src/deploy, ../../../../data is .shipline/shop/data
    assert posixpath.normpath(posixpath.join(".shipline/shop/releases/4/src/deploy", "../../../../data/logs")) == \
        ".shipline/shop/data/logs"
    _, again = release(tmp_path / "later", 12)
    assert yaml.safe_load(again["shipline.override.yml"].data)["services"]["web"]["volumes"] == web["volumes"]


def test_enabled_profiles_reach_compose_through_the_env_file(tmp_path: Path) -> None:
    plan, files = release(tmp_path, profiles="deploy: {profiles: [seed]}\n")
    assert plan.profiles == ("seed",)
    assert b"COMPOSE_PROFILES=seed\n" in files[".env"].data


def test_label_routes_override_the_proxy_and_hide_moved_containers() -> None:
    project = load_compose(["compose.yaml"], MemoryTree({"compose.yaml": (EXAMPLES / "traefik-labels" / "docker-compose.prod.yml").read_text()}),
                           {"COMPOSE_PROJECT_NAME": "shop"}.get)
    routing = label_routing(project, project.active())
    data = yaml.safe_load(override_file({"backend": "r/b:1"}, ROLLOUT, 7, labels=routing))["services"]
    assert data["backend"] == {"image": "r/b:1", "labels": {"dev.shipline.release": "7", "traefik.enable": "false"}}
    assert data["frontend"] == {"labels": {"traefik.enable": "false"}}
    assert "--providers.file.directory=/etc/shipline/traefik" in data["traefik"]["command"]


def test_services_whose_names_differ_only_in_punctuation_keep_their_own_images() -> None:
    # `web-api` and `web_api` once shared one SHIPLINE_IMAGE_WEB_API variable; the override names each service.
    doc = yaml.safe_load(override_file({"web-api": "r/a:1", "web_api": "r/b:1", "web.api": "r/c:1"}, (), 1))
    assert {svc: s["image"] for svc, s in doc["services"].items()} == {"web-api": "r/a:1", "web_api": "r/b:1",
                                                                       "web.api": "r/c:1"}
    env = env_file("shop", "/p", {}, {})
    assert "SHIPLINE_IMAGE" not in env
