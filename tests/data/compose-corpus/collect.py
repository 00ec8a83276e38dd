#!/usr/bin/env python3
"""How this corpus was assembled (kept for provenance; the tests do not run it).

For each entry below, from a local clone of the public repository at the named commit: the Compose files
are copied verbatim, and so is every other small text file Compose reads or mounts from the repository
(`.env`, `env_file`, bind-mounted files, file-based secrets and configs) for every service, profiles
included. The other files the project needs to exist (Dockerfiles, files under bind-mounted or build
directories) are listed in `tree.txt`: the test creates them empty, since `init` and `plan` only need
them to exist. `corpus.yaml` gets the entry's provenance; its expectations are written and reviewed by hand.

    .venv/bin/python tests/data/compose-corpus/collect.py MIRRORS_DIR [NAME ...]

MIRRORS_DIR holds `owner+name/repo` git directories (bare clones).
"""

from __future__ import annotations

import posixpath
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from shipline.compose import load_project, release_inputs
from shipline.compose.load import parse_dotenv
from shipline.init_cmd import COMPOSE_FILE
from shipline.sourcetree import CommitTree

HERE = Path(__file__).resolve().parent
MAX_VERBATIM = 32 * 1024
MAX_LISTED = 300  # files listed under one bind-mounted directory


@dataclass(frozen=True)
class Source:
    name: str
    repo: str
    commit: str
    licence: str
    files: tuple[str, ...]  # repository-relative Compose files, `-f` order
    env: dict[str, str] = field(default_factory=dict)  # what a user sets (from the project's env.example)
    init: str = "picks"  # picks: init finds `files` itself; asks: it asks, then they are named; named: named upfront
    dotenv_from: str = ""  # the project's documented setup copies this file to `.env` next to the Compose file


AC = "docker/awesome-compose"
AC_SHA = "18f59bdb09ecf520dd5758fbf90dec314baec545"
SOURCES = [
    Source("ac-nginx-golang-mysql", AC, AC_SHA, "CC0-1.0", ("nginx-golang-mysql/compose.yaml",)),
    Source("ac-react-java-mysql", AC, AC_SHA, "CC0-1.0", ("react-java-mysql/compose.yaml",)),
    Source("ac-traefik-golang", AC, AC_SHA, "CC0-1.0", ("traefik-golang/compose.yaml",)),
    Source("ac-prometheus-grafana", AC, AC_SHA, "CC0-1.0", ("prometheus-grafana/compose.yaml",)),
    Source("ac-pihole-cloudflared", AC, AC_SHA, "CC0-1.0", ("pihole-cloudflared-DoH/compose.yaml",)),
    Source("ac-plex", AC, AC_SHA, "CC0-1.0", ("plex/compose.yaml",)),
    Source("ac-react-express-mongodb", AC, AC_SHA, "CC0-1.0", ("react-express-mongodb/compose.yaml",)),
    Source("ac-elk", AC, AC_SHA, "CC0-1.0", ("elasticsearch-logstash-kibana/compose.yaml",)),
    Source("ac-wasmedge-kafka-mysql", AC, AC_SHA, "CC0-1.0", ("wasmedge-kafka-mysql/compose.yml",)),
    Source("ac-postgresql-pgadmin", AC, AC_SHA, "CC0-1.0", ("postgresql-pgadmin/compose.yaml",)),
    Source("ac-gitea-postgres", AC, AC_SHA, "CC0-1.0", ("gitea-postgres/compose.yaml",)),
    Source("ac-nextcloud-redis-mariadb", AC, AC_SHA, "CC0-1.0", ("nextcloud-redis-mariadb/compose.yaml",)),
    Source("ac-nginx-flask-mongo", AC, AC_SHA, "CC0-1.0", ("nginx-flask-mongo/compose.yaml",)),
    Source("ac-nginx-wsgi-flask", AC, AC_SHA, "CC0-1.0", ("nginx-wsgi-flask/compose.yaml",)),
    Source("ac-wordpress-mysql", AC, AC_SHA, "CC0-1.0", ("wordpress-mysql/compose.yaml",)),
    Source("ac-django", AC, AC_SHA, "CC0-1.0", ("django/compose.yaml",)),
    Source("ac-minecraft", AC, AC_SHA, "CC0-1.0", ("minecraft/compose.yaml",)),
    Source("ac-nginx-nodejs-redis", AC, AC_SHA, "CC0-1.0", ("nginx-nodejs-redis/compose.yaml",)),
    Source("voting-app", "dockersamples/example-voting-app", "63e9150ca17af4ed05880d4245e486481f73fcb4",
           "Apache-2.0", ("docker-compose.yml",), init="named"),
    Source("voting-app-stack", "dockersamples/example-voting-app", "63e9150ca17af4ed05880d4245e486481f73fcb4",
           "Apache-2.0", ("docker-stack.yml",)),
    Source("fastapi-template", "fastapi/full-stack-fastapi-template", "68adb40d37425f6f8668ec7e5a054500d045e43e",
           "MIT", ("compose.yml", "compose.deploy.yml")),
    Source("mattermost", "mattermost/docker", "7d9d7bff8531029802884a1d1e211246ec8d2c08", "Apache-2.0",
           ("docker-compose.yml", "docker-compose.nginx.yml"), dotenv_from="env.example", init="asks"),
    Source("netbox-docker", "netbox-community/netbox-docker", "27bf52cf3ea882324273fbabbf23f0af6a194f12",
           "Apache-2.0", ("docker-compose.yml",)),
    Source("jitsi-meet", "jitsi/docker-jitsi-meet", "2e6b31d8334998cb26ceef913a8e172fe9b93686", "Apache-2.0",
           ("docker-compose.yml",), dotenv_from="env.example"),
    Source("kong", "Kong/docker-kong", "d1ed165bfeb6304815bc537b3e8ff387fa0b350a", "Apache-2.0",
           ("compose/docker-compose.yml",)),
    Source("otel-demo", "open-telemetry/opentelemetry-demo", "054282e318317f2be09f67dd9b0d7d1278566cfa",
           "Apache-2.0", ("compose.yaml",), init="asks"),
    Source("n8n-ai-starter-kit", "n8n-io/self-hosted-ai-starter-kit", "9ccbaf42e007369453acaec60b9808cf8e6cdb44",
           "Apache-2.0", ("docker-compose.yml",), dotenv_from=".env.example"),
    Source("django-on-docker", "testdrivenio/django-on-docker", "26be9cd5f891734425e4fe754d6340b92180b471", "MIT",
           ("docker-compose.prod.yml",)),
    Source("laradock", "laradock/laradock", "ed6dbaaacb8493fa86362583492ca4c00025188f", "MIT",
           ("docker-compose.yml",), dotenv_from=".env.example", init="asks"),
]


def is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\0" not in data


def collect(mirrors: Path, source: Source) -> None:
    tree = CommitTree(mirrors / source.repo.replace("/", "+") / "repo", source.commit)
    out = HERE / source.name
    project_dir = posixpath.dirname(source.files[0]) or "."
    env = dict(source.env)
    dotenv = tree.read(posixpath.join(project_dir, source.dotenv_from or ".env"))
    if source.dotenv_from and dotenv is not None:
        (out / project_dir).mkdir(parents=True, exist_ok=True)
        (out / project_dir / ".env").write_bytes(dotenv)
    values = {**(parse_dotenv(dotenv.decode()) if dotenv else {}), **env}
    project = load_project(list(source.files), tree, values.get)
    active = project.active(["*"])
    inputs = release_inputs(project, tree, active)
    # Every Compose file beside the first one too: `init` chooses among them as it would in the repository.
    here = "" if project_dir == "." else project_dir
    siblings = {e.path for e in tree.files_under(project_dir) if posixpath.dirname(e.path) == here
                and COMPOSE_FILE.match(posixpath.basename(e.path))}
    verbatim: set[str] = set(source.files) | siblings | {r.path for r in project.compose_refs}
    listed: set[str] = set()
    per_key: dict[str, int] = {}
    for f in inputs.files:
        for key in f.keys:
            per_key[key] = per_key.get(key, 0) + 1
    for f in inputs.files:
        data = tree.read(f.path) or b""
        alone = all(per_key[k] == 1 for k in f.keys)  # a file of its own, not one of a mounted directory
        (verbatim if alone and len(data) <= MAX_VERBATIM and is_text(data) else listed).add(f.path)
    for name in active:
        build = project.services[name].build
        if build is None or "://" in build.context:
            continue
        context = posixpath.normpath(posixpath.join(project_dir, build.context))
        listed.add(posixpath.normpath(posixpath.join(context, build.dockerfile or "Dockerfile")))
    listed -= verbatim
    executable = {e.path for e in tree.files_under(".") if e.executable}
    for path in sorted(verbatim):
        data = tree.read(path)
        if data is None:
            continue
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o755 if path in executable else 0o644)
    by_dir: dict[str, int] = {}
    kept = []
    for path in sorted(listed):
        top = posixpath.dirname(path)
        by_dir[top] = by_dir.get(top, 0) + 1
        if by_dir[top] <= MAX_LISTED:
            kept.append(path)
    (out / "tree.txt").write_text("".join(f"{p}{' x' if p in executable else ''}\n" for p in kept))
    print(f"{source.name}: {len(verbatim)} verbatim, {len(kept)} listed; problems: "
          + "; ".join(str(p) for p in (*project.problems, *inputs.problems)))


def main(argv: list[str]) -> None:
    mirrors = Path(argv[0])
    names = set(argv[1:])
    for source in SOURCES:
        if not names or source.name in names:
            collect(mirrors, source)
    manifest = [{"name": s.name, "repo": s.repo, "commit": s.commit, "licence": s.licence, "files": list(s.files),
                 "init": s.init, **({"env": s.env} if s.env else {}),
                 **({"dotenv_from": s.dotenv_from} if s.dotenv_from else {})}
                for s in SOURCES]
    (HERE / "sources.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


if __name__ == "__main__":
    main(sys.argv[1:])
