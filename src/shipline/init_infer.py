"""What `shipline init` infers from a Compose project: builds, variables, the proxy, and what is left to fill.

Pure: the Compose model in, plain data out, so every inference is tested without a file system.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .compose import ComposeProject
from .config import PLACEHOLDERS
from .project import PROVIDED, PROVIDED_PREFIX
from .traefik_labels import find_traefik
from .variables import parse

# Variable names that hold credentials: they become `secrets:` (masked, 0600 on the server), the rest `env:`.
# Judged by the name's last word, so `POSTGRES_PASSWORD_FILE` (a path) and `VALKEY_PORT` are not secrets.
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN)$|(^|_)(PASS|PWD|PW|KEY|APIKEY|SALT|DSN|PASSPHRASE|CREDENTIALS?)$"
                         r"|SECRET_KEY|^DATABASE_URL$", re.I)
_PROXY_IMAGES = (("traefik", "traefik"), ("caddy", "caddy"), ("nginx", "nginx"), ("haproxy", "haproxy"))


@dataclass(frozen=True)
class BuildEntry:
    context: str  # relative to shipline.yml
    dockerfile: str | None = None
    target: str | None = None
    args: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Inferred:
    compose_files: tuple[str, ...]  # relative to shipline.yml
    builds: dict[str, BuildEntry]
    secrets: tuple[str, ...]
    env: tuple[str, ...]
    summary: tuple[str, ...]  # what init found
    todo: tuple[str, ...]  # what the user still has to fill in or decide
    proxy_comment: tuple[str, ...] = ()  # a commented `proxy:` section to complete, when one is needed


def braced(text: str, dotenv: Mapping[str, str] | None = None) -> str:
    """`$NAME` as `${NAME}`: shipline.yml reads braced variables only (`$NAME` is left to shells). A plain
    variable the committed `.env` sets keeps that value as its default, as Compose would read it."""
    out = []
    for part in parse(text):
        if isinstance(part, str):
            out.append(part.replace("$", "$$"))
        elif part.op == "" and dotenv and re.fullmatch(r"[^${}]*", dotenv.get(part.name, "$")):
            out.append(f"${{{part.name}:-{dotenv[part.name]}}}")
        elif part.braced:
            out.append(_unparse(part))
        else:
            out.append(f"${{{part.name}}}")
    return "".join(out)


def _unparse(var: object) -> str:
    from .variables import Var

    assert isinstance(var, Var)
    inner = "".join(p.replace("$", "$$") if isinstance(p, str) else _unparse(p) for p in var.arg)
    return f"${{{var.name}{var.op}{inner}}}"


def infer(project: ComposeProject, raw: ComposeProject, compose_files: list[str], base_dir: str,
          dotenv: Mapping[str, str] | None = None) -> Inferred:
    """`project` is the Compose model as a server sees it with only the project's committed `.env`
    (`dotenv`); `raw` the same, uninterpolated. `compose_files` and `base_dir` (the directory of
    shipline.yml) are repository-relative.
    """
    dotenv = dotenv or {}
    active = project.active()
    builds: dict[str, BuildEntry] = {}
    todo: list[str] = []
    summary: list[str] = [f"Compose files: {', '.join(compose_files)}"]
    for name in active:
        svc, raw_svc = project.services[name], raw.services.get(name)
        if svc.build is None:
            continue
        context = svc.build.context
        if "://" in context or context.startswith("git@"):
            todo.append(f"build.{name}: the Compose file builds it from {context}; shipline builds from the "
                        "repository, so give a context inside it")
            continue
        if svc.build.dockerfile_inline:
            todo.append(f"build.{name}: `dockerfile_inline` is not supported; commit the Dockerfile and name it")
        rel = posixpath.relpath(posixpath.normpath(posixpath.join(project.project_dir, context)), base_dir or ".")
        raw_args = raw_svc.build.args if raw_svc and raw_svc.build else {}
        args = {}
        for k, v in raw_args.items():
            value = braced(v, dotenv) if v is not None else f"${{{k}}}"
            literal = "".join(p for p in parse(value, braced_only=True) if isinstance(p, str))
            if any(p not in PLACEHOLDERS for p in re.findall(r"\{([^{}]*)\}", literal)):
                todo.append(f"build.{name}.args.{k}: its value has `{{...}}`, which shipline reads as a placeholder; "
                            "add it by hand if it is meant literally")
                continue
            args[k] = value
        builds[name] = BuildEntry(rel, svc.build.dockerfile, svc.build.target, args)
    if builds:
        summary.append("builds: " + ", ".join(
            f"{n} ({b.context}" + (f", target {b.target}" if b.target else "") + (f", {len(b.args)} build arg(s)" if b.args else "") + ")"
            for n, b in builds.items()))
    images = [n for n in active if project.services[n].build is None]
    if images:
        summary.append("runs published images: " + ", ".join(f"{n} ({project.services[n].image or 'no image!'})" for n in images))
    deployed = set(active)
    inactive = [n for n in project.services if n not in deployed]
    if inactive:
        summary.append("not deployed (profiles not enabled; list them in deploy.profiles to deploy them): " + ", ".join(
            f"{n} [{', '.join(project.services[n].profiles)}]" for n in inactive))
    secrets, env = _variables(project, active, dotenv)
    if secrets:
        summary.append("secrets (values from the environment or .shipline/secrets): " + ", ".join(secrets))
        todo.append(f"put the values of {', '.join(secrets)} in .shipline/secrets (NAME=value lines) or in CI secrets")
    if env:
        summary.append("env (read from the environment when you deploy): " + ", ".join(env))
        todo.append(f"export {', '.join(env)} (or write their values into `env:` in shipline.yml)")
    proxy_summary, proxy_todo, proxy_comment = _proxy(project, active)
    summary += proxy_summary
    todo += proxy_todo
    singles = [(n, project.services[n].singleton_reason()) for n in active]
    for name, why in singles:
        if why:
            summary.append(f"{name}: replaced by stop-then-start, because {why}")
    return Inferred(tuple(compose_files), builds, tuple(secrets), tuple(env), tuple(summary), tuple(todo),
                    tuple(proxy_comment))


def _variables(project: ComposeProject, active: list[str], dotenv: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Secrets and plain variables shipline.yml must provide: every `${VAR}` without a default, and the
    passed-through `environment: [NAME]` entries that hold credentials (the others are optional). A plain
    value the committed `.env` gives is provided; a credential there is a development value: listed."""
    deployed = set(active)
    passed = [u for u in project.variables if u.op == "pass" and u.service in deployed and SECRET_NAME.search(u.name)]
    needed: dict[str, None] = {}
    for use in [*project.needed_variables(active), *passed]:
        if use.name not in PROVIDED and not use.name.startswith(PROVIDED_PREFIX):
            needed[use.name] = None
    secrets = [n for n in needed if SECRET_NAME.search(n)]
    return secrets, [n for n in needed if n not in secrets and n not in dotenv]


def _proxy(project: ComposeProject, active: list[str]) -> tuple[list[str], list[str], list[str]]:
    traefik = find_traefik(project, active)
    if traefik and traefik.docker_provider and traefik.labelled:
        return ([f"proxy: Traefik ({traefik.service}) routes {', '.join(traefik.labelled)} with docker labels; "
                 "shipline moves those routes into files it switches during a rollout, so they get zero downtime"],
                [], [])
    for name in active:
        image = (project.services[name].image or "").lower()
        kind = next((k for pattern, k in _PROXY_IMAGES if pattern in image.rsplit("/", 1)[-1]), None)
        if kind in ("traefik", "caddy"):
            comment = [
                "# The reverse proxy shipline switches during a rollout (zero downtime for the services it routes).",
                "# proxy:",
                f"#   type: {kind}",
                f"#   service: {name}",
                "#   api: 127.0.0.1:8080  # its API, published on the server's loopback (docs/configuration.md#proxy)",
                "#   routes:",
                "#     web: {path: /, port: 8000}",
            ]
            return ([f"proxy: {kind} ({name})"],
                    [f"proxy: describe how {name} routes (the commented `proxy:` section) for zero-downtime rollouts"],
                    comment)
        if kind is not None:
            return ([f"proxy: {kind} ({name}) is not switched by shipline: the services behind it are recreated "
                     "(stop, then start)"], [], [])
    return [], [], []
