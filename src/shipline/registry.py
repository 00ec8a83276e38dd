"""The registry's HTTP API (distribution v2), for what `docker` cannot do without moving layers.

An image whose build inputs did not change gets the new commit's tag by a registry-side retag: GET its
manifest by the old tag, PUT the same bytes under the new one. No build, no pull, no layer upload, and the
manifest digest (so every host's cached copy) stays the same. Lookups are one HEAD request.

Authentication follows Docker's: a 401 names the scheme. `Basic` gets the configured username and password;
`Bearer` (Docker Hub, GHCR, most hosted registries) sends them to the token service it names and retries
with the token. Anonymous access is tried first, so public pulls need no credentials.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ShiplineError

if TYPE_CHECKING:
    import httpx

    from .secrets import Secret

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
INDEXES = (OCI_INDEX, DOCKER_LIST)
DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")
RETRY_PAUSES = (0.2, 0.5, 1.0, 2.0)  # seconds before each retry of a request the registry answered with 5xx


class RegistryError(ShiplineError):
    """The registry refused or failed a request; the message says which and what to check."""


@dataclass(frozen=True)
class Manifest:
    media_type: str
    body: bytes  # exactly as the registry sent it: its digest is the image's identity
    digest: str

    def config_digest(self) -> str | None:
        data = json.loads(self.body)
        config = data.get("config") if isinstance(data, dict) else None
        return str(config["digest"]) if isinstance(config, dict) and "digest" in config else None

    def platform_manifest(self, platform: str) -> str | None:
        """In an index, the digest of the image for `os/arch[/variant]` (attestation entries skipped)."""
        data = json.loads(self.body)
        for entry in data.get("manifests") or []:
            p = entry.get("platform") or {}
            name = "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x)
            if name == platform or name.startswith(platform + "/"):
                return str(entry["digest"])
        return None


def api_base(host: str) -> str:
    """The API endpoint of a registry host: Docker Hub's lives elsewhere; loopback registries speak plain
    HTTP, as Docker allows them to by default; every other registry, HTTPS."""
    if host in DOCKER_HUB:
        return "https://registry-1.docker.io"
    name = host[1:host.index("]")] if host.startswith("[") else host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return f"{'http' if _loopback(name) else 'https'}://{host}"


def _loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def split_image(image: str) -> tuple[str, str]:
    """`host[:port]/path/name` -> (host, repository path); Docker Hub's one-part names live in `library/`."""
    host, _, path = image.partition("/")
    if host in DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return host, path


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull"` ->
    ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'([A-Za-z]+)="([^"]*)"', rest)}
    return scheme.lower(), params


class Registry:
    """One registry host, with the credentials from shipline.yml (`registry.username`, `password_secret`)."""

    def __init__(self, host: str, username: str | None = None, password: Secret | None = None, *,
                 transport: httpx.BaseTransport | None = None, timeout: float = 30,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        import httpx  # here, not at import time: `shipline --help` need not load it

        self._sleep = sleep
        self.host = host
        self.base = api_base(host)
        self._username, self._password = username, password
        self._client = httpx.Client(transport=transport, timeout=httpx.Timeout(timeout, connect=5),
                                    follow_redirects=True)
        self._auth: dict[str, str] = {}  # scope -> Authorization header value

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ------------------------------------------------------------------------------------

    def _request(self, method: str, repository: str, path: str, *, push: bool = False,
                 headers: Mapping[str, str] | None = None, content: bytes | None = None) -> httpx.Response:
        import httpx

        scope = f"repository:{repository}:{'pull,push' if push else 'pull'}"
        url = f"{self.base}/v2/{repository}/{path}"
        what = f"{method} {self.host}/v2/{repository}/{path}"

        def send() -> httpx.Response:
            auth = {"Authorization": self._auth[scope]} if scope in self._auth else {}
            return self._client.request(method, url, headers={**(headers or {}), **auth}, content=content)

        try:
            response = send()
            if response.status_code == 401:  # no credentials sent yet, or an expired token: (re)authenticate once
                self._auth[scope] = self._authenticate(response.headers.get("WWW-Authenticate", ""), scope)
                response = send()
            # A registry being written to by a concurrent push can answer 500 for a moment (distribution's
            # storage links are not written atomically); every request here is idempotent, so try again.
            for pause in RETRY_PAUSES:
                if response.status_code < 500:
                    break
                self._sleep(pause)
                response = send()
        except httpx.HTTPError as exc:
            raise RegistryError(f"registry {self.host}: {what} failed: {exc}. Check `registry.url` and that the "
                                "registry is reachable from here.") from None
        if response.status_code == 401:
            raise RegistryError(f"registry {self.host} refused {what} (401 unauthorized) with the configured "
                                "credentials. Check `registry.username` and the secret named by "
                                "`registry.password_secret`.")
        return response

    def _authenticate(self, challenge: str, scope: str) -> str:
        import httpx

        scheme, params = parse_challenge(challenge)
        basic = httpx.BasicAuth(self._username, self._password.reveal()) if self._username and self._password else None
        if scheme == "basic":
            if basic is None:
                raise RegistryError(f"registry {self.host} needs a login: set `registry.username` and "
                                    "`registry.password_secret` in shipline.yml.")
            assert self._username and self._password
            return "Basic " + base64.b64encode(f"{self._username}:{self._password.reveal()}".encode()).decode()
        if scheme == "bearer" and params.get("realm"):
            query = {k: v for k, v in (("service", params.get("service")), ("scope", params.get("scope") or scope)) if v}
            try:
                r = self._client.get(params["realm"], params=query, auth=basic) if basic else \
                    self._client.get(params["realm"], params=query)
            except httpx.HTTPError as exc:
                raise RegistryError(f"registry {self.host}: its token service {params['realm']} failed: {exc}") from None
            if r.status_code != 200:
                raise RegistryError(f"registry {self.host}: its token service {params['realm']} refused the "
                                    f"credentials ({r.status_code}). Check `registry.username` and the secret named by "
                                    "`registry.password_secret`.")
            body: dict[str, Any] = r.json()
            token = body.get("token") or body.get("access_token")
            if not token:
                raise RegistryError(f"registry {self.host}: its token service {params['realm']} sent no token")
            return f"Bearer {token}"
        raise RegistryError(f"registry {self.host} asks for an authentication scheme shipline does not speak: "
                            f"{challenge or '(none given)'}")

    def _check(self, response: httpx.Response, what: str) -> httpx.Response:
        if response.is_success:
            return response
        detail = response.text[:300].strip() if response.content else ""
        raise RegistryError(f"registry {self.host}: {what} failed with {response.status_code}"
                            f"{': ' + detail if detail else ''}")

    # -- what shipline needs ----------------------------------------------------------------------------

    def exists(self, repository: str, reference: str) -> bool:
        """Whether `repository:reference` exists: one HEAD request."""
        r = self._request("HEAD", repository, f"manifests/{reference}", headers={"Accept": ACCEPT})
        if r.status_code == 404:
            return False
        self._check(r, f"looking up {repository}:{reference}")
        return True

    def manifest(self, repository: str, reference: str) -> Manifest:
        r = self._check(self._request("GET", repository, f"manifests/{reference}", headers={"Accept": ACCEPT}),
                        f"reading the manifest of {repository}:{reference}")
        media_type = r.headers.get("Content-Type", "").split(";")[0].strip() or json.loads(r.content).get("mediaType", "")
        digest = r.headers.get("Docker-Content-Digest") or ""
        if not digest:
            digest = "sha256:" + hashlib.sha256(r.content).hexdigest()
        return Manifest(media_type, r.content, digest)

    def put_manifest(self, repository: str, tag: str, manifest: Manifest) -> None:
        r = self._request("PUT", repository, f"manifests/{tag}", push=True,
                          headers={"Content-Type": manifest.media_type}, content=manifest.body)
        self._check(r, f"tagging {repository}:{tag}")

    def retag(self, repository: str, source: str, tag: str) -> Manifest:
        """Give the image `repository:source` the tag `tag` too, registry-side (no layer moves)."""
        manifest = self.manifest(repository, source)
        self.put_manifest(repository, tag, manifest)
        return manifest

    def labels(self, repository: str, manifest: Manifest, platform: str) -> dict[str, str]:
        """The image's labels, from its config blob (for an index: the image for `platform`)."""
        if manifest.media_type in INDEXES:
            child = manifest.platform_manifest(platform)
            if child is None:
                return {}
            manifest = self.manifest(repository, child)
        config = manifest.config_digest()
        if config is None:
            return {}
        r = self._check(self._request("GET", repository, f"blobs/{config}"), f"reading the config of {repository}")
        data = json.loads(r.content)
        return dict((data.get("config") or {}).get("Labels") or {})
