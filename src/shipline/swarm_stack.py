"""A release's Docker Swarm stack, rendered from the user's Compose file (docs/swarm.md).

Every versioned service (`swarm_plan`) becomes one Swarm service per release (`backend-r12`), keeping its Compose
name as a network alias, so the previous release's tasks keep serving until shipline switches the edge proxies
explicitly, and other services still find it by name. The others (a database, the edge proxy) keep their names:
`docker stack deploy` updates them only when their definition changes. Migrations and jobs are one-off services
of the release (one task, never restarted), deployed before the release's services.

`${VAR}` stays in the file: `docker stack deploy` interpolates it from an environment that shipline gives it
from a mode-0600 file (`stack_env`), so no value appears in a command line. Swarm secrets and configs cannot
change, so each is named after its content's digest: a changed file or password is a new object, an unchanged
one keeps the services that use it untouched. Relative paths become absolute ones in the release's directory
on the manager, where `docker stack deploy` reads them. Pure: tested without Docker.
"""

from __future__ import annotations

import copy
import hashlib
import json
import posixpath
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .layout import RELEASE_LABEL
from .swarm_plan import Migration, SwarmPlan, SwarmService

APP_LABEL = "dev.shipline.app"
SERVICE_LABEL = "dev.shipline.service"
KIND_LABEL = "dev.shipline.kind"  # on the services of one release: `release` (versioned) or `oneoff`
STACK_VERSION = "3.8"  # what `docker stack deploy` of Docker 20.10 and later reads
# What a version 3.8 stack file allows in a service; the rest (Compose-only keys such as `mem_limit`, `build`,
# `depends_on`'s long form, `profiles`) is left out, and the plan says so.
SERVICE_KEYS = frozenset((
    "cap_add", "cap_drop", "cgroup_parent", "command", "configs", "credential_spec", "deploy", "devices", "dns",
    "dns_search", "domainname", "entrypoint", "env_file", "environment", "expose", "extra_hosts", "healthcheck",
    "hostname", "image", "init", "ipc", "isolation", "labels", "logging", "mac_address", "networks", "pid", "ports",
    "privileged", "read_only", "secrets", "security_opt", "shm_size", "stdin_open", "stop_grace_period",
    "stop_signal", "sysctls", "tmpfs", "tty", "ulimits", "user", "userns_mode", "volumes", "working_dir"))
# Keys Swarm has no use for and that need no word in the plan: shipline does their work itself.
SILENT = frozenset(("build", "depends_on", "restart", "profiles", "pull_policy", "container_name"))
STACK_FILE, BASE_FILE, SWARM_FILE, ENV_FILE = "stack.yml", "stack-base.yml", "swarm.json", "stack.env"
OBJECTS_DIR = "swarm-objects"  # secrets and configs taken from variables, as files `docker stack deploy` reads


def versioned(service: str, number: int) -> str:
    return f"{service}-r{number}"


def oneoff(service: str, number: int) -> str:
    """The one-off service of a job, or of the migration (`migrate`), in release `number`."""
    return f"{service}-r{number}"


def oneoff_file(service: str) -> str:
    return f"oneoff-{service}.yml"


def ignored_keys(sp: SwarmPlan) -> dict[str, list[str]]:
    """Per service, the keys of its definition a stack file cannot carry (left out, and shown in the plan)."""
    out = {}
    for name, spec in (sp.compose.get("services") or {}).items():
        keys = [k for k in (spec or {}) if k not in SERVICE_KEYS and k not in SILENT and not str(k).startswith("x-")]
        if keys:
            out[str(name)] = keys
    return out


def _labels(raw: Any) -> dict[str, str]:
    """Compose's two forms of labels (a mapping, or a list of `key=value`) as a mapping."""
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return dict(str(item).partition("=")[::2] for item in raw)
    return {}


def with_alias(networks: Any, alias: str) -> dict[str, Any]:
    """The service's networks (either Compose form) with `alias` added on each; no networks means `default`."""
    if not networks:
        return {"default": {"aliases": [alias]}}
    if isinstance(networks, list):
        return {str(n): {"aliases": [alias]} for n in networks}
    out: dict[str, Any] = {}
    for name, cfg in networks.items():
        cfg = dict(cfg or {})
        cfg["aliases"] = [*(cfg.get("aliases") or []), alias]
        out[str(name)] = cfg
    return out


@dataclass(frozen=True)
class Paths:
    """Where a release's files are on the manager: relative paths of the Compose file start at `project_dir`."""

    release_dir: str  # absolute
    project_dir: str  # absolute: the first Compose file's directory in the release's copy of the repository

    def absolute(self, path: str) -> str:
        if posixpath.isabs(path) or path.startswith("~"):
            return path
        return posixpath.normpath(posixpath.join(self.project_dir, path))


def _env_files(raw: Any, paths: Paths) -> list[str]:
    """`env_file` in the one form a stack file reads (a list of paths), absolute; optional ones left out
    (the plan checked that every required one is in the commit, so each listed one is on the manager)."""
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for item in items:
        if isinstance(item, Mapping):
            if item.get("required", True) is False:
                continue
            item = item.get("path")
        if item:
            out.append(paths.absolute(str(item)))
    return out


def _for_swarm(spec: Mapping[str, Any], labels: Mapping[str, str], paths: Paths, stop_timeout: int | None = None) -> dict[str, Any]:
    out = {k: copy.deepcopy(v) for k, v in spec.items() if k in SERVICE_KEYS}
    deploy = dict(out.get("deploy") or {})
    deploy["labels"] = {**_labels(deploy.get("labels")), **labels}
    out["deploy"] = deploy
    if "env_file" in out:
        out["env_file"] = _env_files(out["env_file"], paths)
    if stop_timeout is not None and "stop_grace_period" not in out:
        out["stop_grace_period"] = f"{stop_timeout}s"
    return out


def _top_level(sp: SwarmPlan, services: dict[str, Any], objects: Mapping[str, str], paths: Paths) -> dict[str, Any]:
    compose = sp.compose
    stack: dict[str, Any] = {"version": STACK_VERSION, "services": services}
    for key in ("networks", "volumes"):
        if compose.get(key):
            stack[key] = copy.deepcopy(compose[key])
    for kind in ("secrets", "configs"):
        defined = {}
        for name, spec in (compose.get(kind) or {}).items():
            spec = dict(spec or {})
            if spec.get("external"):
                defined[str(name)] = spec
            elif f"{kind}.{name}" in objects:
                defined[str(name)] = {"name": objects[f"{kind}.{name}"], "file": object_path(kind, str(name), spec, paths)}
        if defined:
            stack[kind] = defined
    return stack


def object_path(kind: str, name: str, spec: Mapping[str, Any], paths: Paths) -> str:
    """Where `docker stack deploy` reads a secret's or config's content on the manager."""
    if spec.get("file"):
        return paths.absolute(str(spec["file"]))
    return f"{paths.release_dir}/{OBJECTS_DIR}/{kind}-{name}"


def object_names(sp: SwarmPlan, contents: Mapping[str, bytes]) -> dict[str, str]:
    """`kind.name` -> the Swarm object's name for this content: `<app>_<name>-<digest>` (at most 64 characters)."""
    out = {}
    for key, data in contents.items():
        name = key.split(".", 1)[1]
        digest = hashlib.sha256(data).hexdigest()[:12]
        out[key] = f"{sp.stack}_{name}"[:51] + f"-{digest}"
    return out


def object_sources(sp: SwarmPlan) -> dict[str, tuple[str, str]]:
    """`kind.name` -> ("file", repository-relative path) or ("environment", variable) for each secret and config
    the stack defines itself (external ones exist already)."""
    out = {}
    for kind in ("secrets", "configs"):
        for name, spec in (sp.compose.get(kind) or {}).items():
            spec = spec or {}
            if spec.get("external"):
                continue
            if spec.get("file"):
                path = posixpath.normpath(posixpath.join(sp.project_dir, str(spec["file"])))
                out[f"{kind}.{name}"] = ("file", path)
            elif spec.get("environment"):
                out[f"{kind}.{name}"] = ("environment", str(spec["environment"]))
    return out


@dataclass(frozen=True)
class SwarmRelease:
    """What renders a release's stack for any release number: the plan as deployed and its objects' names.

    Kept in the release's directory (`swarm.json`), so a rollback renders the earlier release exactly as it was.
    """

    plan: SwarmPlan
    objects: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"plan": asdict(self.plan), "objects": self.objects}, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, raw: bytes | str) -> SwarmRelease:
        data = json.loads(raw)
        p = dict(data["plan"])
        p["services"] = tuple(SwarmService(**s) for s in p["services"])
        p["migrate"] = Migration(p["migrate"]["service"], tuple(p["migrate"]["command"]), p["migrate"]["timeout"]) if p.get("migrate") else None
        return cls(SwarmPlan(**p), dict(data["objects"]))

    def _labels(self, name: str, number: int | None = None, kind: str = "release") -> dict[str, str]:
        labels = {APP_LABEL: self.plan.stack, SERVICE_LABEL: name}
        return {**labels, RELEASE_LABEL: str(number), KIND_LABEL: kind} if number is not None else labels

    def base(self, paths: Paths) -> dict[str, Any]:
        """The services updated in place: what must run (a database, the edge proxy) before anything else."""
        services = {}
        specs = self.plan.compose.get("services") or {}
        for s in self.plan.in_place:
            services[s.name] = _for_swarm(specs.get(s.name) or {}, self._labels(s.name), paths)
        return _top_level(self.plan, services, self.objects, paths)

    def release(self, number: int, images: Mapping[str, str], paths: Paths) -> dict[str, Any]:
        """The whole stack of release `number`: the base, and the versioned services as `<svc>-r<number>`."""
        stack = self.base(paths)
        specs = self.plan.compose.get("services") or {}
        for s in self.plan.versioned:
            svc = _for_swarm(specs.get(s.name) or {}, self._labels(s.name, number), paths, s.stop_timeout)
            if s.name in images:
                svc["image"] = images[s.name]
            svc["networks"] = with_alias(svc.get("networks"), s.name)
            stack["services"][versioned(s.name, number)] = svc
        return stack

    def oneoff(self, number: int, name: str, images: Mapping[str, str], paths: Paths) -> dict[str, Any]:
        """The one-off service of a job (`name` a job service) or of the migration (`name` == "migrate")."""
        m = self.plan.migrate
        service = m.service if name == "migrate" and m else name
        spec = (self.plan.compose.get("services") or {}).get(service) or {}
        job = _for_swarm(spec, self._labels(name, number, "oneoff"), paths)
        if service in images:
            job["image"] = images[service]
        if name == "migrate" and m:
            job["command"] = list(m.command)
            job["healthcheck"] = {"disable": True}
        job.pop("ports", None)
        job["deploy"] = {"replicas": 1, "restart_policy": {"condition": "none"}, "labels": job["deploy"]["labels"],
                         **({"placement": spec["deploy"]["placement"]} if (spec.get("deploy") or {}).get("placement") else {})}
        return _top_level(self.plan, {oneoff(name, number): job}, self.objects, paths)

    def oneoffs(self) -> list[str]:
        """The one-off services of a release, in the order they run: the migration, then the jobs."""
        return (["migrate"] if self.plan.migrate else []) + [s.name for s in self.plan.jobs]


def stack_env(values: Mapping[str, str]) -> str:
    """`export NAME='value'` lines a POSIX shell sources before `docker stack deploy` (uploaded 0600)."""
    return "".join(f"export {k}='" + v.replace("'", "'\\''") + "'\n" for k, v in values.items())


def stack_values(sp: SwarmPlan, env: Mapping[str, str], secrets: Mapping[str, str], provided: Mapping[str, str]) -> dict[str, str]:
    """What `docker stack deploy` interpolates `${VAR}` with: the committed `.env`, then `env:`, then secrets,
    then shipline's own (the same precedence as a Compose release's env file)."""
    return {**sp.defaults, **env, **secrets, **provided}

