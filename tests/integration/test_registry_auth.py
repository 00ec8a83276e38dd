"""The registry client against a real registry (Debian's distribution 2.8) that requires a login (htpasswd).

The registry runs for this module only, on its own loopback port and storage; an image is uploaded through
the v2 API (a layer, a config, a manifest), then looked up, retagged and read back the way `reuse.py` does.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest

from shipline.registry import DOCKER_MANIFEST, Registry, RegistryError
from shipline.secrets import Secret

from .stack import free_port

pytestmark = pytest.mark.integration
USER, PASSWORD = "ci-bot", "pw-Registry-7Qz"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    d = tmp_path_factory.mktemp("registry")
    (d / "htpasswd").write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()}\n")
    host = f"127.0.0.1:{free_port()}"
    (d / "config.yml").write_text(json.dumps({  # YAML is a superset of JSON
        "version": 0.1, "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(d / "data")}},
        "http": {"addr": host},
        "auth": {"htpasswd": {"realm": "shipline-test", "path": str(d / "htpasswd")}},
    }))
    proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(d / "config.yml")],
                            stdout=subprocess.DEVNULL, stderr=(d / "log").open("wb"))
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"http://{host}/v2/", timeout=1).status_code == 401:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (d / "log").read_text()
            time.sleep(0.1)
        upload_image(host, "shop/web", "built-at-a", {"org.opencontainers.image.revision": "a" * 40})
        yield host
    finally:
        proc.terminate()
        proc.wait(10)


def upload_image(host: str, repo: str, tag: str, labels: dict[str, str]) -> None:
    """A one-layer image pushed through the API, with the credentials (what `docker push` does)."""
    layer_tar = io.BytesIO()
    with tarfile.open(fileobj=layer_tar, mode="w") as tar:
        data = b"hello\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    layer = gzip.compress(layer_tar.getvalue())
    diff_id = "sha256:" + hashlib.sha256(layer_tar.getvalue()).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": labels},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    with httpx.Client(auth=(USER, PASSWORD), timeout=10) as client:
        digests = []
        for blob in (layer, config):
            d = "sha256:" + hashlib.sha256(blob).hexdigest()
            start = client.post(f"http://{host}/v2/{repo}/blobs/uploads/")
            start.raise_for_status()
            location = start.headers["Location"]
            url = location if location.startswith("http") else f"http://{host}{location}"
            url += ("&" if "?" in url else "?") + f"digest={d}"  # after the upload's own state parameters
            client.put(url, content=blob,
                       headers={"Content-Type": "application/octet-stream"}).raise_for_status()
            digests.append((d, len(blob)))
        manifest = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                    "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                               "digest": digests[1][0], "size": digests[1][1]},
                    "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                "digest": digests[0][0], "size": digests[0][1]}]}
        client.put(f"http://{host}/v2/{repo}/manifests/{tag}", content=json.dumps(manifest).encode(),
                   headers={"Content-Type": DOCKER_MANIFEST}).raise_for_status()


def test_login_lookup_and_registry_side_retag(registry: str) -> None:
    with Registry(registry, USER, Secret("REGISTRY_PASSWORD", PASSWORD)) as reg:
        assert reg.exists("shop/web", "built-at-a")
        assert not reg.exists("shop/web", "inputs-nothing")
        manifest = reg.retag("shop/web", "built-at-a", "b123456")
        again = reg.manifest("shop/web", "b123456")
        assert again.digest == manifest.digest and again.body == manifest.body
        assert reg.labels("shop/web", again, "linux/amd64") == {"org.opencontainers.image.revision": "a" * 40}


def test_wrong_or_missing_credentials_are_refused_clearly(registry: str) -> None:
    with Registry(registry, USER, Secret("REGISTRY_PASSWORD", "not-the-pw")) as reg, \
            pytest.raises(RegistryError, match=r"registry\.password_secret") as err:
        reg.exists("shop/web", "built-at-a")
    assert "not-the-pw" not in err.value.message
    with Registry(registry) as anonymous, pytest.raises(RegistryError, match="needs a login"):
        anonymous.exists("shop/web", "built-at-a")


def test_unreachable_registry_is_one_paragraph(tmp_path: Path) -> None:
    with Registry(f"127.0.0.1:{free_port()}") as reg, pytest.raises(RegistryError, match=r"failed: .*Check `registry\.url`"):
        reg.exists("shop/web", "x")
