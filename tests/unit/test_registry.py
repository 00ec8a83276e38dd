"""The registry client against an in-memory registry speaking the v2 protocol, with Basic or Bearer auth."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx
import pytest

from shipline.registry import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    Registry,
    RegistryError,
    api_base,
    parse_challenge,
    split_image,
)
from shipline.secrets import Secret

PASSWORD = "s3cret-Registry-pw"
TOKEN = "tok-123"


class FakeRegistry:
    """Manifests and blobs in memory; `auth` is None, "basic" or "bearer" (with a token service at /token)."""

    def __init__(self, auth: str | None = None) -> None:
        self.auth = auth
        self.manifests: dict[tuple[str, str], tuple[str, bytes]] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: list[httpx.Request] = []
        self.token_requests: list[httpx.Request] = []

    def add_image(self, repo: str, tag: str, labels: dict[str, str]) -> bytes:
        config = json.dumps({"config": {"Labels": labels}}).encode()
        digest = "sha256:" + hashlib.sha256(config).hexdigest()
        self.blobs[digest] = config
        body = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": digest},
                           "layers": []}, indent=3).encode()  # odd indentation: a re-serialised copy would differ
        self.manifests[(repo, tag)] = (DOCKER_MANIFEST, body)
        self.manifests[(repo, "sha256:" + hashlib.sha256(body).hexdigest())] = (DOCKER_MANIFEST, body)
        return body

    def authorised(self, request: httpx.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if self.auth == "basic":
            return header == "Basic " + base64.b64encode(f"bot:{PASSWORD}".encode()).decode()
        if self.auth == "bearer":
            return header == f"Bearer {TOKEN}"
        return True

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            self.token_requests.append(request)
            if request.headers.get("Authorization") == "Basic " + base64.b64encode(f"bot:{PASSWORD}".encode()).decode():
                return httpx.Response(200, json={"token": TOKEN})
            return httpx.Response(401)
        self.requests.append(request)
        if not self.authorised(request):
            challenge = ('Basic realm="registry"' if self.auth == "basic" else
                         'Bearer realm="https://auth.test/token",service="registry.test"')
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        parts = request.url.path.split("/")  # /v2/<repo...>/manifests/<ref>
        kind, ref, repo = parts[-2], parts[-1], "/".join(parts[2:-2])
        if kind == "blobs":
            return httpx.Response(200, content=self.blobs[ref]) if ref in self.blobs else httpx.Response(404)
        if request.method == "PUT":
            self.manifests[(repo, ref)] = (request.headers["Content-Type"], request.content)
            return httpx.Response(201)
        if (repo, ref) not in self.manifests:
            return httpx.Response(404)
        media, body = self.manifests[(repo, ref)]
        headers = {"Content-Type": media, "Docker-Content-Digest": "sha256:" + hashlib.sha256(body).hexdigest()}
        return httpx.Response(200, headers=headers, content=b"" if request.method == "HEAD" else body)


def client(fake: FakeRegistry, host: str = "registry.test", password: str | None = PASSWORD) -> Registry:
    return Registry(host, "bot" if password else None, Secret("REGISTRY_PASSWORD", password) if password else None,
                    transport=httpx.MockTransport(fake))


@pytest.mark.parametrize(("host", "base"), [
    ("127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("localhost:5000", "http://localhost:5000"),
    ("[::1]:5000", "http://[::1]:5000"),
    ("ghcr.io", "https://ghcr.io"),
    ("registry.example.com:5000", "https://registry.example.com:5000"),
    ("docker.io", "https://registry-1.docker.io"),
])
def test_api_base_follows_dockers_rules(host: str, base: str) -> None:
    assert api_base(host) == base


def test_split_image_and_docker_hub_library() -> None:
    assert split_image("127.0.0.1:5000/shop/backend") == ("127.0.0.1:5000", "shop/backend")
    assert split_image("docker.io/nginx") == ("docker.io", "library/nginx")


def test_parse_challenge() -> None:
    assert parse_challenge('Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull"') == (
        "bearer", {"realm": "https://ghcr.io/token", "service": "ghcr.io", "scope": "repository:a/b:pull"})
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})


def test_exists_is_one_head_request() -> None:
    fake = FakeRegistry()
    fake.add_image("shop/backend", "inputs-abc", {})
    with client(fake, password=None) as reg:
        assert reg.exists("shop/backend", "inputs-abc")
        assert not reg.exists("shop/backend", "inputs-def")
    assert [r.method for r in fake.requests] == ["HEAD", "HEAD"]


def test_retag_puts_the_same_bytes_under_the_new_tag() -> None:
    fake = FakeRegistry()
    body = fake.add_image("shop/backend", "inputs-abc", {"org.opencontainers.image.revision": "a" * 40})
    with client(fake, password=None) as reg:
        manifest = reg.retag("shop/backend", "inputs-abc", "1234567")
        assert reg.labels("shop/backend", manifest, "linux/amd64") == {"org.opencontainers.image.revision": "a" * 40}
    assert fake.manifests[("shop/backend", "1234567")] == (DOCKER_MANIFEST, body)  # digest unchanged
    assert manifest.digest == "sha256:" + hashlib.sha256(body).hexdigest()
    assert "application/vnd.oci.image.index.v1+json" in fake.requests[0].headers["Accept"]


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_authenticates_as_the_registry_asks(auth: str) -> None:
    fake = FakeRegistry(auth)
    fake.add_image("shop/backend", "inputs-abc", {})
    with client(fake) as reg:
        reg.retag("shop/backend", "inputs-abc", "1234567")
        assert reg.exists("shop/backend", "1234567")
    assert ("shop/backend", "1234567") in fake.manifests
    if auth == "bearer":
        scopes = [r.url.params["scope"] for r in fake.token_requests]
        assert scopes == ["repository:shop/backend:pull", "repository:shop/backend:pull,push"]  # one token per scope
        assert fake.token_requests[0].url.params["service"] == "registry.test"


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_wrong_password_is_a_clear_error_without_the_password(auth: str) -> None:
    fake = FakeRegistry(auth)
    reg = Registry("registry.test", "bot", Secret("REGISTRY_PASSWORD", "wrong-pw-Xy"), transport=httpx.MockTransport(fake))
    with pytest.raises(RegistryError) as err:
        reg.exists("shop/backend", "inputs-abc")
    assert "registry.password_secret" in err.value.message and "wrong-pw-Xy" not in err.value.message


def test_basic_challenge_without_credentials_asks_for_them() -> None:
    with pytest.raises(RegistryError, match=r"needs a login: set `registry\.username`"):
        client(FakeRegistry("basic"), password=None).exists("shop/backend", "x")


def test_an_unreachable_registry_is_one_clear_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    reg = Registry("registry.test", transport=httpx.MockTransport(refuse))
    with pytest.raises(RegistryError, match=r"HEAD registry.test/v2/shop/backend/manifests/x failed: connection refused"):
        reg.exists("shop/backend", "x")


def test_labels_of_an_index_come_from_the_platforms_image() -> None:
    fake = FakeRegistry()
    child = fake.add_image("shop/backend", "amd", {"dev.shipline.inputs": "abc"})
    index = json.dumps({"mediaType": OCI_INDEX, "manifests": [
        {"digest": "sha256:" + "0" * 64, "platform": {"os": "unknown", "architecture": "unknown"}},  # attestation
        {"digest": "sha256:" + hashlib.sha256(child).hexdigest(), "platform": {"os": "linux", "architecture": "amd64"}},
    ]}).encode()
    fake.manifests[("shop/backend", "multi")] = (OCI_INDEX, index)
    with client(fake, password=None) as reg:
        manifest = reg.manifest("shop/backend", "multi")
        assert manifest.media_type == OCI_INDEX
        assert reg.labels("shop/backend", manifest, "linux/amd64") == {"dev.shipline.inputs": "abc"}
        assert reg.labels("shop/backend", manifest, "linux/arm64") == {}


def test_a_registry_error_under_concurrent_pushes_is_retried_then_reported() -> None:
    fake = FakeRegistry()
    fake.add_image("shop/backend", "abc1234", {})
    answers = iter([500, 503])

    def flaky(request: httpx.Request) -> httpx.Response:
        code = next(answers, None)
        return httpx.Response(code, json={"errors": [{"code": "UNKNOWN"}]}) if code else fake(request)

    pauses: list[float] = []
    reg = Registry("registry.test", transport=httpx.MockTransport(flaky), sleep=pauses.append)
    assert reg.manifest("shop/backend", "abc1234").media_type == DOCKER_MANIFEST
    assert pauses == [0.2, 0.5]
    always = Registry("registry.test", transport=httpx.MockTransport(lambda r: httpx.Response(500, text="boom")),
                      sleep=pauses.append)
    with pytest.raises(RegistryError, match="failed with 500: boom"):
        always.manifest("shop/backend", "abc1234")
