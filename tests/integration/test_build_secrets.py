"""Build secrets on the real engine: a token a build needs is usable in `RUN --mount=type=secret` and is found
nowhere afterwards (image history, config, layers, argv, output); a credential in the git remote stays out of
the images' labels."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .stack import git, read_testenv, registry_labels

pytestmark = pytest.mark.integration
REGISTRY = "127.0.0.1:5000"
TOKEN = f"tok-{uuid.uuid4().hex}"  # what a private package index would want
REMOTE_TOKEN = f"ghp_{uuid.uuid4().hex}"

# BuildKit's layer cache does not key on a secret's value: RUN_ID keeps an earlier run's layer (made with another
# token) from being reused.
DOCKERFILE = f"""\
FROM busybox:1.35
ENV RUN_ID={uuid.uuid4().hex}
# The build uses the token (here: keeps only its hash, to prove it saw the right value).
RUN --mount=type=secret,id=API_TOKEN,required=true sha256sum /run/secrets/API_TOKEN | cut -d' ' -f1 > /token.sha256
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, dict[str, str]]]:
    testenv = read_testenv()
    app = f"bs{uuid.uuid4().hex[:8]}"
    path = tmp_path_factory.mktemp("build-secrets") / app
    (path / "api").mkdir(parents=True)
    (path / "api" / "Dockerfile").write_text(DOCKERFILE)
    (path / "docker-compose.prod.yml").write_text("services:\n  api:\n    build: ./api\n")
    (path / "shipline.yml").write_text(
        f"app: {app}\nregistry: {{url: '{REGISTRY}'}}\n"
        "build:\n  api: {context: api, secrets: [API_TOKEN], args: {NOT_SECRET: '{short_sha}'}}\n"
        f"hosts:\n  - {{address: '{testenv['SHIPLINE_TEST_SSH_ADDRESS']}', host_key: '{testenv['SHIPLINE_HOST_KEY']}'}}\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "remote", "add", "origin", f"https://ci-bot:{REMOTE_TOKEN}@git.example.test/acme/{app}.git")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "api with a build secret")
    env = {**os.environ, **testenv, "API_TOKEN": TOKEN}
    yield path, app, env
    subprocess.run(["docker", "image", "rm", "--force", f"{REGISTRY}/{app}/api:{git(path, 'rev-parse', '--short=7', 'HEAD')}"],
                   capture_output=True, check=False)


def shipline(path: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "shipline", *args], cwd=path, env=env, capture_output=True, text=True,
                          timeout=600)
    print(proc.stdout + proc.stderr)
    return proc.returncode, proc.stdout + proc.stderr


def test_plan_shows_the_secret_by_name_only(repo: tuple[Path, str, dict[str, str]]) -> None:
    path, _, env = repo
    code, out = shipline(path, env, "plan")
    assert code == 0
    assert "--secret id=API_TOKEN,env=API_TOKEN" in out
    assert TOKEN not in out and REMOTE_TOKEN not in out and "ci-bot" not in out
    assert "org.opencontainers.image.source=https://git.example.test/acme/" in out


def test_the_build_uses_the_secret_and_the_image_keeps_none_of_it(repo: tuple[Path, str, dict[str, str]],
                                                                    tmp_path: Path) -> None:
    path, app, env = repo
    code, out = shipline(path, env, "publish")
    assert code == 0, out
    assert TOKEN not in out and REMOTE_TOKEN not in out
    ref = f"{REGISTRY}/{app}/api:{git(path, 'rev-parse', '--short=7', 'HEAD')}"
    seen = subprocess.run(["docker", "run", "--rm", ref, "cat", "/token.sha256"], capture_output=True, text=True, check=True)
    assert seen.stdout.strip() == hashlib.sha256(TOKEN.encode()).hexdigest()  # the build had the token
    history = subprocess.run(["docker", "history", "--no-trunc", ref], capture_output=True, text=True, check=True).stdout
    inspect = subprocess.run(["docker", "image", "inspect", ref], capture_output=True, text=True, check=True).stdout
    assert "--mount=type=secret" in history or "sha256sum /run/secrets/API_TOKEN" in history
    for text in (history, inspect):
        assert TOKEN not in text and REMOTE_TOKEN not in text
    saved = tmp_path / "image.tar"
    subprocess.run(["docker", "save", "--output", str(saved), ref], check=True)
    with tarfile.open(saved) as outer:
        for member in outer.getmembers():
            data = outer.extractfile(member)
            if data is None:
                continue
            blob = data.read()
            assert TOKEN.encode() not in blob and REMOTE_TOKEN.encode() not in blob, member.name
            if member.name.endswith("layer.tar"):
                with tarfile.open(fileobj=io.BytesIO(blob)) as layer:
                    names = layer.getnames()
                    assert not any(n.startswith("run/secrets/") and n != "run/secrets" for n in names), names
    labels = registry_labels(REGISTRY, f"{app}/api", ref.rsplit(":", 1)[1])
    assert labels["org.opencontainers.image.source"] == f"https://git.example.test/acme/{app}.git"
    assert json.dumps(labels).find("ci-bot") == -1
