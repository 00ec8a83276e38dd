import yaml

from shipline.plan import ServiceRollout
from shipline.release_files import FileBlob, env_file, override_file, quote

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
