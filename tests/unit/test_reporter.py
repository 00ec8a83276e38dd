"""Progress output: compact by default (a line per stage and task), every line with -v, the whole log of a failure."""

from __future__ import annotations

import sys
import threading
from datetime import datetime
from io import StringIO

import pytest
from rich.console import Console

from shipline import cli
from shipline.errors import StepFailed
from shipline.executors.local import LocalExecutor
from shipline.reporter import Reporter
from shipline.secrets import Masker, Secret

NOON = datetime(2026, 11, 26, 12, 0, 5)
SECRET = "s3cret-token-value"


def plain(**kwargs: bool) -> tuple[Reporter, StringIO]:
    out = StringIO()
    masker = Masker([Secret("TOKEN", SECRET)])
    return Reporter(Console(file=out, width=200), masker, now=lambda: NOON, **kwargs), out


def two_parallel_builds(report: Reporter, lines: int = 300) -> None:
    """What build_images does: one thread per service, each feeding its own sink."""
    def build(name: str) -> None:
        sink = report.sink(f"build {name}")
        for i in range(lines):
            sink(f"#{i} {name} step output {i:04d} token={SECRET}")
        sink.end(0)

    with report.stage("build", "backend, frontend"):
        threads = [threading.Thread(target=build, args=(n,)) for n in ("backend", "frontend")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def test_plain_output_is_a_line_per_stage_and_task_with_times_not_every_build_line() -> None:
    report, out = plain()
    two_parallel_builds(report)
    text = out.getvalue()
    lines = text.splitlines()
    assert lines[0] == "12:00:05 ==> build backend, frontend"
    assert "step output" not in text and SECRET not in text
    assert any(line.startswith("12:00:05  ok  build in ") for line in lines)  # the stable line per stage
    for name in ("backend", "frontend"):
        assert f"12:00:05     build {name} ..." in lines
        assert any(line.startswith(f"12:00:05     build {name} ok ") and line.endswith("300 lines") for line in lines)
    assert len(lines) == 6 and report.durations["build"] >= 0


def test_verbose_prints_every_line_masked_with_its_task() -> None:
    report, out = plain(verbose=True)
    two_parallel_builds(report, lines=50)
    lines = out.getvalue().splitlines()
    backend = [line for line in lines if line.startswith("12:00:05 build backend | ")]
    assert len(backend) == 50 and backend[7].endswith("step output 0007 token=******")
    assert SECRET not in out.getvalue()


def test_a_failed_command_prints_its_whole_output_and_only_its_own() -> None:
    report, out = plain()
    script = ("import sys\nfor i in range(20000): print(f'line {i:05d} ' + 'x' * 60 + ' " + SECRET + "')\n"
              "print('the real error', file=sys.stderr); sys.exit(2)")
    local = LocalExecutor(report.mask)
    with pytest.raises(StepFailed), report.stage("build"):
        ok = local.run([sys.executable, "-c", "print('fine')"], on_line=report.sink("build frontend"))
        bad = local.run([sys.executable, "-c", script], on_line=report.sink("build backend"))
        assert ok.ok and bad.returncode == 2
        raise StepFailed("building backend failed")
    text = out.getvalue()
    assert "FAIL build after" in text
    assert "build backend: its whole output (20001 lines, exit status 2)" in text
    assert "line 00000 " in text and "line 19999 " in text and "the real error" in text  # all, not a tail
    assert SECRET not in text and "build frontend: its whole output" not in text
    assert "    build backend failed" in text and "    build frontend ok" in text


def test_stages_running_at_once_keep_their_own_tasks() -> None:
    """The local build runs beside the hosts' lock stage: each thread's output goes to the stage it started."""
    report, out = plain()
    locking, built = threading.Event(), threading.Event()

    def build() -> None:
        with report.stage("build"):
            locking.wait()
            sink = report.sink("build backend")  # made after the other thread's stage began
            sink("step 1")
            sink.end(0)
            built.set()

    thread = threading.Thread(target=build)
    thread.start()
    with report.stage("lock"):
        locking.set()
        built.wait()
        sink = report.sink("deploy@host")
        sink("waiting")
        sink.end(0)
    thread.join()
    lines = out.getvalue().splitlines()
    lock_ok = next(i for i, line in enumerate(lines) if " ok  lock in " in line)
    build_ok = next(i for i, line in enumerate(lines) if " ok  build in " in line)
    assert lines[build_ok + 1].startswith("12:00:05     build backend ok ")
    assert lines[lock_ok + 1].startswith("12:00:05     deploy@host ok ")
    assert set(report.durations) == {"lock", "build"}


def test_live_progress_redraws_a_line_per_task_and_leaves_a_summary() -> None:
    out = StringIO()
    report = Reporter(Console(file=out, force_terminal=True, color_system=None, width=120), Masker([Secret("TOKEN", SECRET)]), live=True)
    seen: list[str] = []
    with report.stage("build", "backend, frontend"):
        for name in ("backend", "frontend"):
            sink = report.sink(f"build {name}")
            for i in range(2000):
                sink(f"step {i:04d} of {name} [/x] {SECRET}")
        report.sink("build frontend").end(0)
        frame = StringIO()
        Console(file=frame, width=120).print(report._render())
        seen = frame.getvalue().splitlines()
    assert seen[0].split()[1] == "build" and seen[0].split()[2].endswith("s") and "backend, frontend" in seen[0]
    assert "build backend" in seen[1] and "step 1999 of backend [/x] ******" in seen[1]
    assert "✓" in seen[2] and "build frontend" in seen[2]
    text = out.getvalue()
    assert "ok  build in " in text and "build backend ok" in text
    assert text.count("step ") < 100 and SECRET not in text  # compact: the steps are not all printed


def test_cli_picks_live_only_on_a_terminal_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "console", lambda: Console(file=StringIO(), force_terminal=True))
    monkeypatch.delenv("CI", raising=False)
    assert cli.reporter(Masker()).live
    assert not cli.reporter(Masker(), verbose=True).live
    monkeypatch.setenv("CI", "true")
    assert not cli.reporter(Masker()).live
    monkeypatch.setattr(cli, "console", lambda: Console(file=StringIO()))
    monkeypatch.delenv("CI")
    assert not cli.reporter(Masker()).live
