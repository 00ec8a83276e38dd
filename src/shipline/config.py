"""The shipline.yml schema and its loader.

Everything a user can get wrong in shipline.yml is caught here, before anything runs, and reported
as one paragraph per problem naming the file, the key path and the fix.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError
from .hostkeys import parse_pin
from .interpolation import BadTemplate, MissingVariable, TooManyValues, interpolate
from .layout import HostLayout
from .yamlload import YamlError
from .yamlload import load as load_yaml

NAME_RE = r"^[a-z0-9][a-z0-9_-]*$"
SecretName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
PLACEHOLDERS = ("sha", "short_sha", "ref", "app")


class _Strict(BaseModel):
    # Numbers become strings where a string is expected (`PORT: 8000` in env or build args), as in Compose.
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


def _command(value: Any) -> Any:
    """One clear error for a wrong command, instead of one per member of `str | list[str]`."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str | int | float) for v in value):
        return [str(v) for v in value]
    raise ValueError("not a command")


Command = Annotated[str | list[str], BeforeValidator(_command)]


class BuildSpec(_Strict):
    """How to build one Compose service's image."""

    context: str = "."
    dockerfile: str | None = None
    target: str | None = None
    args: dict[str, str] = Field(default_factory=dict)
    # BuildKit secrets (`RUN --mount=type=secret,id=NAME`): in the build, never in argv or the image's history.
    secrets: list[SecretName] = Field(default_factory=list)
    image: str | None = Field(default=None, pattern=r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*$")

    @field_validator("args")
    @classmethod
    def _known_placeholders(cls, args: dict[str, str]) -> dict[str, str]:
        for key, value in args.items():
            for name in re.findall(r"\{([^{}]*)\}", value):
                if name not in PLACEHOLDERS:
                    raise ValueError(
                        f"build arg {key} uses unknown placeholder {{{name}}}; "
                        f"known placeholders are {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
                    )
        return args


class TestStep(_Strict):
    """A test or lint command run in a container; a non-zero exit stops the pipeline."""

    name: str = Field(pattern=NAME_RE)
    service: str | None = None
    image: str | None = None
    run: Command
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = None

    @model_validator(mode="after")
    def _one_image_source(self) -> TestStep:
        if (self.service is None) == (self.image is None):
            raise ValueError(
                "give exactly one of `service` (run in that service's freshly built image) "
                "or `image` (run in any image, with the checkout mounted at /workspace)"
            )
        return self


class Registry(_Strict):
    """Where images are pushed and pulled from (Docker Hub, GHCR, any registry v2)."""

    url: str = Field(pattern=r"^[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9._/-]+)?$")
    username: str | None = None
    password_secret: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @model_validator(mode="after")
    def _credentials_pair(self) -> Registry:
        if (self.username is None) != (self.password_secret is None):
            raise ValueError("give both `username` and `password_secret`, or neither (anonymous registry)")
        return self


ADDRESS_RE = re.compile(r"^(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(?::(?P<port>\d+))?$")


def _host_keys(value: Any) -> Any:
    """One pin or several (a list, or lines of one string: a known_hosts excerpt), normalized one per line.

    Several pins let a key rotation accept the old and the new key for a while.
    """
    if value is None or value == "":  # unset, or an unset variable in a read-only command
        return None
    if not isinstance(value, str | list) or not all(isinstance(v, str) for v in (value if isinstance(value, list) else [])):
        raise ValueError("not an SSH host key: give a key line, or a list of them")
    lines = [line.strip() for item in ([value] if isinstance(value, str) else value) for line in item.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    pins: list[str] = []
    for n, line in enumerate(lines, 1):
        try:
            pins.append(parse_pin(line))
        except ValueError as exc:
            raise ValueError(f"{exc} (pin {n} of {len(lines)})" if len(lines) > 1 else str(exc)) from None
    return "\n".join(dict.fromkeys(pins)) or None


class Host(_Strict):
    """A server deployed to over SSH. Its host key is pinned: an unknown or changed key is refused."""

    address: str
    ssh_key: str | None = None
    # Pins, one per line (`pins`); unset: the first connection is refused with the key to pin.
    host_key: Annotated[str | None, BeforeValidator(_host_keys)] = None
    roles: list[Annotated[str, Field(pattern=NAME_RE)]] | None = None  # names in `roles:`; unset: every service

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not ADDRESS_RE.match(value):
            raise ValueError("not an SSH address")
        return value

    @property
    def pins(self) -> list[str]:
        return self.host_key.splitlines() if self.host_key else []

    @property
    def user(self) -> str:
        m = ADDRESS_RE.match(self.address)
        assert m
        return m.group("user") or "root"

    @property
    def hostname(self) -> str:
        m = ADDRESS_RE.match(self.address)
        assert m
        return m.group("host").strip("[]")

    @property
    def port(self) -> int:
        m = ADDRESS_RE.match(self.address)
        assert m
        return int(m.group("port") or 22)


Strategy = Literal["zero-downtime", "start-first", "recreate", "job"]


class ServiceDeploy(_Strict):
    """Per-service deploy settings."""

    health_timeout: Annotated[float, Field(gt=0)] | None = None
    # zero-downtime: new container next to the old, proxy switched, old one drained and stopped (routed services).
    # start-first: the same without a proxy (workers). recreate: stop, then start (singletons, databases).
    # job: run to completion; exit status 0 is success (migrations, seeds).
    strategy: Strategy | None = None
    drain: Annotated[float, Field(ge=0, le=600)] = 2
    stop_timeout: Annotated[int, Field(ge=0, le=3600)] = 30


class Route(_Strict):
    """Where the proxy sends requests for a service."""

    path: str = Field(default="/", pattern=r"^/[A-Za-z0-9._~/-]*$")
    host: str | None = Field(default=None, pattern=r"^[A-Za-z0-9.-]+$")
    port: Annotated[int, Field(ge=1, le=65535)]


class Proxy(_Strict):
    """The reverse proxy shipline switches explicitly (and verifies through its API) during rollouts."""

    type: Literal["traefik", "caddy"]
    service: str
    api: str | None = Field(default=None, pattern=r"^[A-Za-z0-9.-]+:[0-9]+$")  # traefik: its API on the server
    routes: dict[str, Route] = Field(min_length=1)
    entrypoint: str = "websecure"
    tls: bool = True
    listen: list[str] = Field(default_factory=lambda: [":80"])  # caddy: addresses its server listens on
    # caddy: its admin API, on the container's own loopback or a unix socket (shipline reaches it with
    # `docker exec`), so no other container on a shared network can reload or stop the proxy.
    admin_listen: str = Field(default="localhost:2019", pattern=r"^(localhost|127\.0\.0\.1|\[::1\]):[0-9]+$|^unix//[A-Za-z0-9._/-]+$")
    # caddy: where the proxy container sees shipline's upstream files (the host's ~/.shipline/APP/proxy)
    files_mount: str = Field(default="/etc/shipline", pattern=r"^/[A-Za-z0-9._/-]*$")
    switch_timeout: Annotated[float, Field(gt=0)] = 15

    @model_validator(mode="after")
    def _api_for_traefik_only(self) -> Proxy:
        if self.type == "traefik" and self.api is None:
            raise ValueError("Traefik needs `api`: where its API answers on the server, e.g. `api: 127.0.0.1:8081`")
        if self.type == "caddy" and self.api is not None:
            raise ValueError("Caddy takes no `api`: shipline reaches its admin API inside the proxy's container "
                             "(`admin_listen`, default localhost:2019). Remove `api` and any published admin port")
        return self


class Migrate(_Strict):
    """A one-off command (database migrations) run with the new image before services are updated."""

    service: str
    command: Command


BuildCacheType = Literal["registry", "inline", "off"]
DeployMode = Literal["compose", "swarm"]


class BuildCache(_Strict):
    """BuildKit's layer cache kept in the registry, so a fresh CI runner rebuilds only the layers that changed.

    registry: `--cache-to type=registry,mode=max` into `<image>:<tag>` (every stage's layers); BuildKit's
    `docker` driver cannot export it: it needs a docker-container builder (`docker buildx create --use`;
    on GitHub, docker/setup-buildx-action). inline: the cache travels inside each pushed image and `<tag>`
    follows the newest one; any builder, final-stage layers only. off: the local cache only.
    """

    type: BuildCacheType = "off"
    tag: str = Field(default="buildcache", pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


class Deploy(_Strict):
    # compose: `docker compose` on each host. swarm: one stack on a Swarm whose nodes are the hosts, deployed
    # through the first (a manager); see docs/swarm.md.
    mode: DeployMode = "compose"
    order: list[str] | None = None
    # Compose profiles to enable; as with `docker compose up`, services in other profiles are not deployed.
    profiles: list[str] = Field(default_factory=list)
    path: str = Field(default=".shipline", pattern=r"^[A-Za-z0-9._/-]+$")
    keep_releases: Annotated[int, Field(ge=1, le=100)] = 5
    health_timeout: Annotated[float, Field(gt=0)] = 60
    services: dict[str, ServiceDeploy] = Field(default_factory=dict)
    migrate: Migrate | None = None
    lock_wait: Annotated[float, Field(ge=0)] = 120
    lock_ttl: Annotated[float, Field(gt=0)] = 1800
    # Several hosts switch in batches of this many hosts (or this percentage of them, "25%"); the first batch is
    # the canary. After each batch, `batch_wait` seconds pass and its health is checked again before the next.
    batch: Annotated[int, Field(ge=1)] | Annotated[str, Field(pattern=r"^[0-9]{1,3}%$")] = 1
    batch_wait: Annotated[float, Field(ge=0, le=3600)] = 0

    @field_validator("batch")
    @classmethod
    def _percentage(cls, value: int | str) -> int | str:
        if isinstance(value, str) and not 1 <= int(value[:-1]) <= 100:
            raise ValueError("a percentage from 1% to 100%")
        return value

    @field_validator("path")
    @classmethod
    def _inside_home(cls, value: str) -> str:
        # Pruning deletes release directories under it: it must not point at /, /etc or a sibling's files.
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError("must stay inside the SSH user's home: a relative path without `..`")
        return value


class Config(_Strict):
    """shipline.yml: what Compose cannot say (what to build and test, where and how to deploy)."""

    app: str = Field(pattern=NAME_RE, max_length=48)
    # The production Compose file, or a base file and its overrides, merged as `docker compose -f a -f b` does.
    compose: str | list[str] = "docker-compose.prod.yml"
    branch: str = "main"
    sha_length: Annotated[int, Field(ge=4, le=40)] = 7
    registry: Registry
    build: dict[str, BuildSpec] = Field(default_factory=dict)
    test: list[TestStep] = Field(default_factory=list)
    hosts: list[Host] = Field(min_length=1)
    deploy: Deploy = Field(default_factory=Deploy)
    secrets: list[SecretName] = Field(default_factory=list)
    secrets_file: str = ".shipline/secrets"
    env: dict[str, str] = Field(default_factory=dict)
    proxy: Proxy | None = None
    # Which services run where: role name -> services; a host lists its roles (a host without `roles` runs all).
    roles: dict[Annotated[str, Field(pattern=NAME_RE)], list[str]] = Field(default_factory=dict)
    build_cache: BuildCache = Field(default_factory=BuildCache)

    @field_validator("compose")
    @classmethod
    def _compose_files(cls, value: str | list[str]) -> str | list[str]:
        files = [value] if isinstance(value, str) else value
        if not files or any(not f or f.startswith("/") for f in files):
            raise ValueError("give the Compose file, or a list of files (base first), relative to shipline.yml")
        return value

    @property
    def compose_files(self) -> list[str]:
        return [self.compose] if isinstance(self.compose, str) else list(self.compose)

    def host_services(self, host: Host) -> set[str] | None:
        """The services `host` runs (those of its roles), or None for every service."""
        if host.roles is None:
            return None
        return {svc for role in host.roles for svc in self.roles.get(role, [])}

    def service_deploy(self, service: str) -> ServiceDeploy:
        return self.deploy.services.get(service) or ServiceDeploy()

    def health_timeout(self, service: str) -> float:
        svc = self.deploy.services.get(service)
        return svc.health_timeout if svc and svc.health_timeout else self.deploy.health_timeout

    def layout(self) -> HostLayout:
        return HostLayout(self.deploy.path, self.app)

    def image_name(self, service: str) -> str:
        """Repository path of a built service, e.g. `127.0.0.1:5000/myapp/backend`."""
        spec = self.build[service]
        return f"{self.registry.url}/{spec.image or f'{self.app}/{service}'}"


# Fixes shown for a key when it is missing or wrong, by the key's last name.
HINTS: dict[str, str] = {
    "app": "Name the app in lower case letters, digits, `-` or `_`, e.g. `app: myshop`; it becomes the Compose project name on the hosts.",
    "registry": "Give the registry images are pushed to, e.g. `registry: {url: ghcr.io/myorg}`; add both `username` and `password_secret` if it needs a login.",
    "url": "Give the registry as host[:port][/namespace], e.g. `ghcr.io/myorg` or `127.0.0.1:5000`.",
    "hosts": "List at least one server, e.g. `hosts: [{address: deploy@203.0.113.10, ssh_key: ~/.ssh/id_ed25519, host_key: 'ssh-ed25519 AAAA...'}]`.",
    "host_key": "Pin the server's SSH host key: run `shipline keyscan user@host:port` from a trusted network and paste the printed `ssh-ed25519 AAAA...` line here (a known_hosts line or the key's `SHA256:...` fingerprint work too; a list pins several keys during a rotation).",
    "address": "Write the server as user@host or user@host:port, e.g. `deploy@203.0.113.10:22`.",
    "run": "Give the command as a string (run with sh -c) or as a non-empty list of arguments.",
    "command": "Give the command as a string (run with sh -c) or as a non-empty list of arguments.",
    "keep_releases": "Give a whole number from 1 to 100; older images are pruned from the hosts.",
    "health_timeout": "Give the seconds to wait for a service to become healthy, e.g. `health_timeout: 60`.",
    "sha_length": "Give a whole number from 4 to 40 (7 matches `git rev-parse --short`).",
    "name": "Name the step in lower case letters, digits, `-` or `_`.",
    "secrets": "Name each secret like an environment variable (letters, digits and `_`, not starting with a digit), e.g. `DATABASE_PASSWORD`.",
    "image": "Give the image's repository path under the registry in lower case, e.g. `myorg/backend`; leave it out for `<app>/<service>`.",
    "path": "Give the directory on the hosts, relative to the SSH user's home, that holds the releases, e.g. `.shipline` (letters, digits, `.`, `_`, `-`, `/`).",
    "mode": "Give `compose` (docker compose on each host, the default) or `swarm` (one stack on the Swarm the hosts form; docs/swarm.md).",
    "tag": "Give a Docker tag (letters, digits, `_`, `.`, `-`; at most 128), e.g. `buildcache`.",
    "batch": "Give how many hosts switch at a time: a number (`batch: 1`) or a percentage of the hosts (`batch: 25%`).",
    "batch_wait": "Give the seconds each batch is watched before the next one switches, from 0 to 3600.",
    "roles": "Name each role in lower case letters, digits, `-` or `_`, e.g. `roles: {web: [proxy, backend], db: [db]}`, and list a host's roles as `roles: [web]`.",
    "admin_listen": "Keep Caddy's admin API inside its container: `localhost:2019` (the default) or a unix socket such as `unix//run/caddy/admin.sock`; on any other address, every container on a shared network could reload or stop the proxy.",
    "password_secret": "Name the secret that holds the registry password (an environment variable or a line of the secrets file), e.g. `password_secret: REGISTRY_PASSWORD`.",
}


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The field names allowed at the mapping that holds `loc`'s last key."""
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            continue
        model = _model_in(field.annotation)
    return list(model.model_fields) if model is not None and hasattr(model, "model_fields") else []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _describe(err: Mapping[str, Any], file: str) -> str:
    loc = tuple(err["loc"])
    # Errors raised in model validators carry no field name: they are about the mapping itself.
    where = _loc(loc) or "(top level)"
    key = next((p for p in reversed(loc) if isinstance(p, str)), "")
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc)
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"Did you mean `{close[0]}`? " if close else ""
        return f"{file}: {where}: unknown key. {hint}Allowed keys here: {', '.join(allowed)}."
    if kind == "missing":
        return f"{file}: {where}: this key is required. {HINTS.get(key, '')}".rstrip()
    # Pydantic's own wording would quote the regular expression; the hint says what is expected.
    msg = "not in the expected form" if kind == "string_pattern_mismatch" else str(err["msg"]).removeprefix("Value error, ")
    given = err.get("input")
    shown = "" if isinstance(given, dict | list) or given is None else f" (got {given!r})"
    return f"{file}: {where}: {msg}{shown}. {HINTS.get(key, '')}".rstrip()


def parse_config(data: Any, file: str, env: Mapping[str, str], *, lenient: bool = False) -> Config:
    """Validate already-parsed YAML; raises ConfigError listing every problem."""
    if not isinstance(data, dict):
        what = "empty" if data is None else f"a YAML {type(data).__name__}"
        raise ConfigError([f"{file}: the file must be a YAML mapping of keys such as `app:`, `registry:`, `hosts:`; it is {what}. Run `shipline init` for a starter file."])
    try:
        data = interpolate(data, env, missing="" if lenient else None)
    except MissingVariable as exc:
        why = f" ({exc.message})" if exc.message else ""
        raise ConfigError([
            f"{file}: {exc.path}: uses ${{{exc.name}}}, but the environment variable {exc.name} is not set (or is empty){why}. "
            f"Export it, or give a default with ${{{exc.name}:-value}}."
        ]) from None
    except TooManyValues as exc:
        raise ConfigError([
            f"{file}: {exc.path or '(top level)'}: the file holds more than {exc.limit:,} values once its YAML aliases "
            f"(`*name`) are expanded, far more than any shipline.yml needs; aliases nested in aliases multiply. "
            "Write those values out, or alias only small mappings."
        ]) from None
    except BadTemplate as exc:
        raise ConfigError([f"{file}: {exc.path}: {exc.reason}. Write `$$` for a literal `$`."]) from None
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_describe(e, file) for e in exc.errors()]) from None


def read_yaml(path: Path, if_missing: str) -> Any:
    """A YAML file's data; a ConfigError naming the file (and where YAML broke) when it is missing or invalid."""
    file = str(path)
    if not path.is_file():
        raise ConfigError([f"{file}: no such file. {if_missing}"])
    try:
        return load_yaml(path.read_bytes())
    except YamlError as exc:
        raise ConfigError([f"{file}: {exc}. Check the indentation and quoting there."]) from None
