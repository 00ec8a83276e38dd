"""Texts written by `shipline init`: a starter shipline.yml and a GitHub Actions workflow.

Pure functions of their arguments, so what `init` writes is tested without a file system.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable

import yaml

from .config import NAME_RE, Config
from .init_infer import Inferred
from .variables import references

# The command lines the generated workflow runs; kept here so they follow the CLI if it changes.
INSTALL_COMMAND = "python -m pip install shipline"
# A fresh runner has no layer cache: BuildKit's is kept in the registry (`--build-cache registry`), which needs
# the docker-container builder that docker/setup-buildx-action creates (Docker's default builder cannot export it).
PUBLISH_COMMAND = 'shipline publish --ref "$GITHUB_SHA" --only {service} --build-cache registry'
DEPLOY_COMMAND = 'shipline deploy --ref "$GITHUB_SHA" --no-build'
DEPLOY_ALL_COMMAND = 'shipline deploy --ref "$GITHUB_SHA"'  # when nothing is built, there is nothing to publish

PYTHON_VERSION = "3.12"
CHECKOUT_ACTION = "actions/checkout@v5"  # v4 and older run on node20, which GitHub retired
SETUP_PYTHON_ACTION = "actions/setup-python@v6"  # v5 runs on node20 too
SETUP_BUILDX_ACTION = "docker/setup-buildx-action@v4"  # v3 runs on node20
SSH_KEY_SECRET = "SSH_PRIVATE_KEY"  # the deploy job's private key, one more per extra key path: _2, _3...
DEFAULT_SSH_KEY = "~/.ssh/id_ed25519"  # where paramiko looks when a host names no key

# Variables the starter file leaves for the user to fill (export them, or replace them in the file).
HOST_VAR = "SHIPLINE_HOST"
HOST_KEY_VAR = "SHIPLINE_HOST_KEY"
REGISTRY_VAR = "SHIPLINE_REGISTRY"

def app_name(raw: str) -> str:
    """A valid `app:` from a directory or project name: `My Shop` -> `my-shop`."""
    name = re.sub(r"[^a-z0-9_-]+", "-", raw.lower()).strip("-_")[:48].rstrip("-_")
    return name if re.match(NAME_RE, name) else "app"


def variables_used(text: str) -> list[str]:
    """Names of the `${VAR}` a shipline.yml needs from the environment (those without a default).

    Only values count, as in `interpolate`: a `${VAR}` in a comment or a key is not read.
    """
    names: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str):
            names.extend(r.name for r in references(value, braced_only=True) if r.op in ("", "?", ":?"))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(yaml.safe_load(text))
    return list(dict.fromkeys(names))


def _scalar(value: str) -> str:
    """`value` as a YAML scalar: plain when YAML reads it back unchanged, else double-quoted."""
    if re.fullmatch(r"[A-Za-z0-9_./~-]+", value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value)


def starter_config(app: str, inferred: Inferred) -> str:
    """A commented shipline.yml for a Compose project, from what `init_infer.infer` found in it."""
    files = list(inferred.compose_files)
    compose = _scalar(files[0]) if len(files) == 1 else "[" + ", ".join(_scalar(f) for f in files) + "]"
    lines = [
        "# shipline.yml: what Docker Compose cannot say: what to build and test, where and how to deploy.",
        "# Reference: docs/configuration.md. `${NAME}` is read from the environment; `${NAME:-default}` has a default.",
        "",
        f"app: {_scalar(app_name(app))}  # the Compose project name on the hosts",
        f"compose: {compose}  # the production Compose file(s), base first, relative to this file",
        "branch: main  # `shipline deploy` deploys the head of this branch by default",
        "",
        "registry:",
        "  # Where images are pushed, tagged with the short commit SHA: e.g. ghcr.io/myorg or 127.0.0.1:5000.",
        f"  url: ${{{REGISTRY_VAR}}}",
        "  # For a registry that needs a login, name the secret holding the password (see `secrets` below):",
        "  # username: myorg-bot",
        "  # password_secret: REGISTRY_PASSWORD",
        "",
    ]
    if inferred.builds:
        lines += ["build:  # Compose services whose image shipline builds from this repository (from their `build:`)"]
        for name, spec in inferred.builds.items():
            lines += [f"  {_scalar(name)}:", f"    context: {_scalar(spec.context)}"]
            lines += [f"    dockerfile: {_scalar(spec.dockerfile)}"] if spec.dockerfile else []
            lines += [f"    target: {_scalar(spec.target)}"] if spec.target else []
            if spec.args:
                lines += ["    args:"] + [f"      {_scalar(k)}: {_scalar(v)}" for k, v in spec.args.items()]
            else:
                lines += ["    # args: {GIT_SHA: \"{sha}\"}  # also {short_sha}, {ref}, {app}"]
        lines += [""]
    else:
        lines += ["build: {}  # no service has a `build:` in the Compose file", ""]
    example = next(iter(inferred.builds), None)
    lines += ["# Test and lint steps run in containers after the build; a failing step stops the deploy."]
    if example is not None:
        lines += [
            "test: []",
            "#  - name: unit",
            f"#    service: {_scalar(example)}  # run in this service's freshly built image",
            "#    run: pytest -q",
        ]
    else:
        lines += ["test: []"]
    lines += [
        "#  - name: lint",
        "#    image: python:3.12-slim  # or any image, with the checkout mounted at /workspace",
        "#    run: [sh, -c, \"pip install ruff && ruff check .\"]",
        "",
        "hosts:",
        "  # The server to deploy to, as user@host or user@host:port.",
        f"  - address: ${{{HOST_VAR}}}",
        f"    ssh_key: {DEFAULT_SSH_KEY}  # the private key that may log in there",
        "    # The server's SSH host key is pinned: any other key is refused. From a network you trust, run",
        "    #   shipline keyscan user@host",
        "    # and put the printed `ssh-ed25519 AAAA...` line here (or export it as " + HOST_KEY_VAR + ").",
        f"    host_key: ${{{HOST_KEY_VAR}}}",
        "",
        "deploy:",
        "  keep_releases: 5  # releases (and images) kept on each host for `shipline rollback`",
        "  health_timeout: 60  # seconds a service may take to become healthy before the deploy is rolled back",
        "  # order: [db, backend, frontend]  # default: dependencies first, from `depends_on`",
        "  # profiles: [worker]  # Compose profiles to deploy too (default: none, as `docker compose up`)",
        "",
        *inferred.proxy_comment,
        *([""] if inferred.proxy_comment else []),
        "# Names of secrets passed to the app: each comes from the environment, else from .shipline/secrets",
        "# (NAME=value lines; keep that file out of git). They are masked in all output.",
        f"secrets: [{', '.join(inferred.secrets)}]" if inferred.secrets else "secrets: []",
    ]
    if inferred.env:
        lines += ["", "# Plain values the Compose file needs (`${NAME}` without a default), here read from the environment",
                  "# when you deploy; write the values themselves instead if they are not per-machine.", "env:"]
        lines += [f"  {name}: ${{{name}}}" for name in inferred.env]
    return "\n".join([*lines, ""])


def _key_paths(config: Config) -> list[str]:
    """Each distinct SSH key path the hosts use; a host without one uses the default key."""
    return list(dict.fromkeys(host.ssh_key or DEFAULT_SSH_KEY for host in config.hosts))


def _shell_path(path: str) -> str:
    """A path as a shell word, with a leading `~/` left for the shell to expand."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def _env_block(names: Iterable[tuple[str, str]], indent: str) -> list[str]:
    return [f"{indent}{name}: {value}" for name, value in names]


def github_workflow(config: Config, variables: Iterable[str] = ()) -> str:
    """`.github/workflows/deploy.yml`: one image-build job per built service, then one deploy job.

    `variables` are the `${VAR}` names shipline.yml reads from the environment (`variables_used`);
    the workflow takes them from the repository's Actions variables. Secrets (the SSH key, the
    registry password, every name in `secrets:`) come from the repository's Actions secrets.
    """
    app = config.app
    built = list(config.build)
    var_env = [(name, f"${{{{ vars.{name} }}}}") for name in dict.fromkeys(variables)]
    registry_env = (
        [(config.registry.password_secret, f"${{{{ secrets.{config.registry.password_secret} }}}}")]
        if config.registry.password_secret
        else []
    )
    key_paths = _key_paths(config)
    key_secrets = [SSH_KEY_SECRET if i == 0 else f"{SSH_KEY_SECRET}_{i + 1}" for i in range(len(key_paths))]
    app_env = [(name, f"${{{{ secrets.{name} }}}}") for name in config.secrets if name not in dict(registry_env)]

    setup = [
        f"      - uses: {CHECKOUT_ACTION}",
        f"      - uses: {SETUP_PYTHON_ACTION}",
        "        with:",
        f"          python-version: \"{PYTHON_VERSION}\"",
        "      - name: Install shipline",
        f"        run: {INSTALL_COMMAND}",
    ]
    lines = [
        f"# Generated by `shipline init` for {app}: build the images, then deploy them over SSH.",
        "# Secrets (Settings > Secrets and variables > Actions): "
        + ", ".join([*key_secrets, *(n for n, _ in registry_env), *(n for n, _ in app_env)]) + ".",
        *(["# Variables: " + ", ".join(n for n, _ in var_env) + "."] if var_env else []),
        "# Host keys are pinned in shipline.yml; shipline refuses a server whose key differs.",
        f"name: deploy {app}",
        "",
        "on:",
        "  push:",
        f"    branches: [{_scalar(config.branch)}]",
        "  workflow_dispatch:",
        "",
        "permissions:",
        "  contents: read",
        "",
        "jobs:",
    ]
    if built:
        job_env = [*var_env, *registry_env]
        publish = PUBLISH_COMMAND.format(service='"$SERVICE"')
        lines += [
            "  build:",
            "    name: build ${{ matrix.service }}",
            "    runs-on: ubuntu-latest",
            "    strategy:",
            "      matrix:",
            f"        service: [{', '.join(_scalar(s) for s in built)}]",
            *(["    env:", *_env_block(job_env, "      ")] if job_env else []),
            "    steps:",
            *setup,
            "      - name: Set up a builder that keeps its layer cache in the registry",
            f"        uses: {SETUP_BUILDX_ACTION}",
            "      - name: Build, test and push ${{ matrix.service }}",
            f"        run: {publish}",
            "        env:",
            "          SERVICE: ${{ matrix.service }}",
            "",
        ]
    deploy_env = [*var_env, *registry_env, *app_env]
    lines += [
        "  deploy:",
        *(["    needs: [build]"] if built else []),
        "    runs-on: ubuntu-latest",
        "    concurrency:  # one deploy at a time; a newer push waits instead of interleaving",
        f"      group: shipline-deploy-{app}",
        "      cancel-in-progress: false",
        *(["    env:", *_env_block(deploy_env, "      ")] if deploy_env else []),
        "    steps:",
        *setup,
    ]
    for path, secret in zip(key_paths, key_secrets, strict=True):
        word = _shell_path(path)
        lines += [
            f"      - name: Write SSH key {path}",
            "        env:",
            f"          SSH_PRIVATE_KEY: ${{{{ secrets.{secret} }}}}",
            "        run: |",
            "          umask 077",
            f"          mkdir -p \"$(dirname -- {word})\"",
            f"          printf '%s\\n' \"$SSH_PRIVATE_KEY\" > {word}",
            f"          chmod 600 {word}",
        ]
    lines += [
        "      - name: Deploy",
        f"        run: {DEPLOY_COMMAND if built else DEPLOY_ALL_COMMAND}",
        "",
    ]
    return "\n".join(lines)
