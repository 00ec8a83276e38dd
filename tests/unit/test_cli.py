"""The CLI in-process: user data (config values, stored reasons, command output) is printed as written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shipline import ledger
from shipline.cli import main
from shipline.errors import ExitCode

from .fakes import FakeExecutor
from .projects import SHIPLINE, committed_project, git, write_project


@pytest.mark.parametrize("app", ["[/x]", "shop[bold]"])
def test_an_error_quoting_brackets_prints_them_and_keeps_its_exit_status(
        tmp_path: Path, app: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_project(tmp_path, SHIPLINE.replace("app: shop", f"app: '{app}'"))
    assert main(["plan", "--config", str(path)]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert f"(got '{app}')" in err and "Traceback" not in err


def test_releases_table_prints_a_stored_reason_as_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_project(tmp_path)
    host = FakeExecutor()
    record = ledger.Record(number=1, app="shop", sha="a" * 40, short_sha="aaaaaaa", ref="main", source="cli", actor="ann",
                           status=ledger.FAILED, started_at="2026-11-26T12:00:00+00:00",
                           reason="build failed: [/x] and [word] in its output")
    host.files[".shipline/shop/ledger.jsonl"] = (ledger.encode(record), 0o644)
    monkeypatch.setattr("shipline.cli.ssh_connector", lambda masker, stop: lambda index, target: host)
    assert main(["releases", "--config", str(path)]) == 0
    assert "[/x] and [word] in its" in capsys.readouterr().out


def test_help_loads_no_heavy_module() -> None:
    """`shipline --help` starts fast because the commands import pydantic, paramiko and rich themselves."""
    code = ("import sys; from shipline.cli import main; main(['--help']); "
            "print(sorted(m for m in ('pydantic', 'paramiko', 'yaml', 'httpx', 'shipline.config', 'shipline.pipeline') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "deploy" in proc.stdout and proc.stdout.strip().endswith("[]"), proc.stdout


def test_status_shows_each_hosts_release_and_flags_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    second = "  - address: deploy@127.0.0.2:2222\n    host_key: SHA256:" + "A" * 43 + "\n"
    path = write_project(tmp_path, SHIPLINE.replace("deploy:\n", second + "deploy:\n", 1))
    hosts = {}
    for address, live in (("deploy@127.0.0.1:2222", 2), ("deploy@127.0.0.2:2222", 1)):
        host = FakeExecutor()
        host.files[".shipline/shop/ledger.jsonl"] = (b"".join(
            ledger.encode(ledger.Record(number=n, app="shop", sha=f"{n}" * 40, short_sha=f"{n}" * 7, ref="main",
                                        source="cli", actor="ann", status=ledger.SUCCEEDED,
                                        started_at="2026-11-26T12:00:00+00:00")) for n in range(1, live + 1)), 0o644)
        hosts[address] = host
    monkeypatch.setattr("shipline.cli.ssh_connector", lambda masker, stop: lambda index, target: hosts[target.host.address])
    assert main(["status", "--json", "--config", str(path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["drift"] is True
    assert [h["release"]["number"] for h in data["hosts"]] == [2, 1]
    assert main(["status", "--config", str(path)]) == 0
    text = capsys.readouterr().out
    assert "drift" in text and "release 2 (2222222" in text and "release 1 (1111111" in text


def test_plan_in_process_prints_the_plan_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_project(tmp_path)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for step in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "x"]):
        subprocess.run(["git", "-C", str(tmp_path), *step], check=True, env={**os.environ, **env})
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if ".git" not in p.parts)
    assert main(["plan", "--config", str(path)]) == 0
    assert "5. deploy" in capsys.readouterr().out
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if ".git" not in p.parts) == before


def test_plan_masks_secrets_interpolated_into_args_and_strips_remote_credentials(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    shipline = SHIPLINE.replace('args: {GIT_SHA: "{short_sha}"}', 'args: {GIT_SHA: "{short_sha}", DB: "${DB_URL}"}')
    shipline = shipline.replace("run: python -m unittest}", "run: python -m unittest, env: {TOKEN: '${API_TOKEN}'}}")
    shipline = shipline.replace("frontend: {context: frontend}", "frontend: {context: frontend, secrets: [API_TOKEN]}")
    path = committed_project(tmp_path, shipline)
    git(tmp_path, "remote", "add", "origin", "https://ci-bot:ghp_remote-token-value@github.com/acme/shop.git")
    monkeypatch.setenv("POSTGRES_PASSWORD", "pg-s3cret-value")
    monkeypatch.setenv("DB_URL", "postgres://app:pg-s3cret-value@db/app")
    monkeypatch.setenv("API_TOKEN", "api-t0ken-value")
    assert main(["plan", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "pg-s3cret-value" not in out and "DB=postgres://app:******@db/app" in out
    assert "api-t0ken-value" not in out and "TOKEN=******" in out
    assert "--secret id=API_TOKEN,env=API_TOKEN" in out
    assert "ghp_remote-token-value" not in out and "source=https://github.com/acme/shop.git" in out
