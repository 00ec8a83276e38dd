"""The CLI in-process: user data (config values, stored reasons, command output) is printed as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shipline.cli import main
from shipline.errors import ExitCode
from shipline.history import FAILED, History

from .projects import SHIPLINE, write_project


@pytest.mark.parametrize("app", ["[/x]", "shop[bold]"])
def test_an_error_quoting_brackets_prints_them_and_keeps_its_exit_status(
        tmp_path: Path, app: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_project(tmp_path, SHIPLINE.replace("app: shop", f"app: '{app}'"))
    assert main(["plan", "--config", str(path)]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert f"(got '{app}')" in err and "Traceback" not in err


def test_releases_table_prints_a_stored_reason_as_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_project(tmp_path)
    history = History(tmp_path / ".shipline" / "history.db")
    number = history.start(app="shop", sha="a" * 40, short_sha="aaaaaaa", ref="main", source="cli", actor="ann",
                           images={}, hosts=["h"])
    history.finish(number, FAILED, {}, "build failed: [/x] and [word] in its output")
    assert main(["releases", "--config", str(path)]) == 0
    assert "[/x] and [word] in its" in capsys.readouterr().out


def test_help_loads_no_heavy_module() -> None:
    """`shipline --help` starts fast because the commands import pydantic, paramiko and rich themselves."""
    code = ("import sys; from shipline.cli import main; main(['--help']); "
            "print(sorted(m for m in ('pydantic', 'paramiko', 'yaml', 'httpx', 'shipline.config', 'shipline.pipeline') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "deploy" in proc.stdout and proc.stdout.strip().endswith("[]"), proc.stdout
