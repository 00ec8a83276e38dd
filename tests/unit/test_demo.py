"""`make demo`'s repository: the generated database password is written for its owner only."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

DEMO_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"


def test_demo_writes_its_secrets_file_mode_0600(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("demo", DEMO_SCRIPT)
    assert spec and spec.loader
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    monkeypatch.setattr(demo, "DEMO", tmp_path / "fullstack")
    monkeypatch.setenv("SHIPLINE_SSH_KEY", "/nonexistent/key")
    monkeypatch.setenv("SHIPLINE_HOST_KEY", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEPwjd55qyfWrIcmgTUyGeVtYeQ30dl8ZGWmFyuVeScZ")
    demo.create_repo(8443, 8081)
    secrets = tmp_path / "fullstack" / ".shipline" / "secrets"
    assert secrets.read_text().startswith("POSTGRES_PASSWORD=")
    assert secrets.stat().st_mode & 0o777 == 0o600
