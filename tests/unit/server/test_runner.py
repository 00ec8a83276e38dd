"""The runner with real child processes (no Docker): output captured and masked, cancel and timeout like Ctrl-C."""

import asyncio
import sys
import time
from pathlib import Path

import pytest

from shipline.server.events import Hub
from shipline.server.queue import Queue
from shipline.server.repos import Repos
from shipline.server.runner import OutputFile, RunLog, Runner
from shipline.server.settings import parse_settings
from shipline.server.store import CANCELLED, FAILED, SUCCEEDED, TIMED_OUT, Run, Store

SECRET = "s3cret-db-password-value"
CHILD = r"""
import signal, sys, time
def unwind(signum, frame):
    print("unwinding: switched back, lock released", flush=True)
    sys.exit(130)
signal.signal(signal.SIGTERM, signal.SIG_IGN if "stubborn" in sys.argv else unwind)
print("03:35:09 ==> build", flush=True)  # the reporter's plain lines (not a terminal), as with -v
print("03:35:10  ok  build in 1.5s", flush=True)
print("03:35:10 test unit | " + sys.argv[1][:10], flush=True)
print("03:35:11 test unit | " + sys.argv[1][10:], flush=True)
if "fail" in sys.argv:
    print("error: the backend did not become healthy", flush=True)
    sys.exit(5)
if "sleep" in sys.argv or "stubborn" in sys.argv:
    time.sleep(60)
"""


def setup(tmp_path: Path, timeout: float = 60, grace: float = 1) -> tuple[Runner, Queue, Run]:
    settings = parse_settings({"data_dir": str(tmp_path), "operator_token": "x" * 16,
                               "apps": {"shop": {"timeout": timeout, "cancel_grace": grace}}}, "serve.yml", {})
    store = Store(tmp_path / "serve.db")
    queue = Queue(store)
    runner = Runner(settings, store, Hub(), Repos(settings), lambda app: {"DB": SECRET}, lambda: [])
    queued = queue.deploy("shop", "a" * 40, "refs/heads/main", "git-push", "ann")
    assert queued
    run = queue.next("shop")
    assert run
    (tmp_path / "apps" / "shop" / "checkout").mkdir(parents=True)
    return runner, queue, run


def spawn(runner: Runner, run: Run, *mode: str, cancel_after: float | None = None, queue: Queue | None = None) -> tuple[str, str]:
    async def go() -> tuple[str, str]:
        log = RunLog(runner.store, runner.hub, run, [SECRET])
        task = asyncio.create_task(runner.spawn(run, [sys.executable, "-c", CHILD, SECRET, *mode], log))
        if cancel_after is not None and queue:
            await asyncio.sleep(cancel_after)
            queue.cancel(run.id, "operator")
        status, reason, _ = await task
        return status, reason
    return asyncio.run(go())


def log_of(runner: Runner, run: Run) -> str:
    return "\n".join(line for _, line in runner.store.log(run.id))


def test_output_is_captured_masked_and_stages_noted(tmp_path: Path) -> None:
    runner, _, run = setup(tmp_path)
    assert spawn(runner, run) == (SUCCEEDED, "")
    text = log_of(runner, run)
    assert "==> build" in text and SECRET[:10] not in text and SECRET[10:] not in text
    assert "test unit | ******" in text
    stored = runner.store.run(run.id)
    assert stored and stored.stages == {"build": 1.5}


def test_failure_reason_is_the_deploys_error_line(tmp_path: Path) -> None:
    runner, _, run = setup(tmp_path)
    assert spawn(runner, run, "fail") == (FAILED, "the backend did not become healthy")


def test_cancel_sends_sigterm_and_the_child_unwinds(tmp_path: Path) -> None:
    runner, queue, run = setup(tmp_path)
    started = time.monotonic()
    status, reason = spawn(runner, run, "sleep", cancel_after=1.0, queue=queue)
    assert (status, reason) == (CANCELLED, "cancelled by operator")
    assert time.monotonic() - started < 10
    assert "unwinding: switched back, lock released" in log_of(runner, run)


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    runner, queue, run = setup(tmp_path, grace=1)
    started = time.monotonic()
    status, _ = spawn(runner, run, "stubborn", cancel_after=0.5, queue=queue)
    assert status == CANCELLED and time.monotonic() - started < 10
    assert "SIGKILL" in log_of(runner, run)


def test_timeout_stops_the_run(tmp_path: Path) -> None:
    runner, _, run = setup(tmp_path, timeout=1)
    status, reason = spawn(runner, run, "sleep")
    assert status == TIMED_OUT and "timed out after 1s" in reason
    assert "unwinding" in log_of(runner, run)


@pytest.mark.parametrize(("chunks", "lines"), [
    ([b"one\ntw", b"o\n"], ["one", "two"]),
    ([b"progress 10%\rprogress 100%\n"], ["progress 100%"]),
    ([b"no newline at the end"], ["no newline at the end"]),
])
def test_output_file_reads_whole_lines(tmp_path: Path, chunks: list[bytes], lines: list[str]) -> None:
    path = tmp_path / "out"
    out = OutputFile(path)
    got: list[str] = []
    with path.open("wb") as f:
        for chunk in chunks:
            f.write(chunk)
            f.flush()
            got += out.read()
    got += out.read(final=True)
    assert got == lines


def test_restart_stops_an_orphaned_run_keeps_its_output_and_marks_it_interrupted(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess

    from shipline.server.runner import RUN_ENV
    from shipline.server.store import INTERRUPTED

    runner, _queue, run = setup(tmp_path, grace=5)
    out = runner.output_path(run.id)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as f:  # a deploy left behind by a server that died
        child = subprocess.Popen([sys.executable, "-c", CHILD, SECRET, "sleep"], stdout=f, stderr=subprocess.STDOUT,
                                 env={**os.environ, RUN_ENV: str(run.id)}, start_new_session=True)
    runner.store.update_run(run.id, pid=child.pid)
    time.sleep(1)
    child.send_signal(signal.SIGTERM)  # what the dead server's PR_SET_PDEATHSIG sent it
    assert asyncio.run(runner.recover()) == [run.id]
    assert child.wait(5) == 130  # it got SIGTERM and unwound
    stored = runner.store.run(run.id)
    assert stored and stored.status == INTERRUPTED and "not replayed" in stored.reason
    text = log_of(runner, run)
    assert "==> build" in text and "unwinding" in text and SECRET[10:] not in text
    assert not out.exists()


def test_the_deploy_is_told_to_stop_when_the_server_dies(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: a `shipline serve` killed with -9 leaves no deploy running unattended."""
    import os
    import signal
    import subprocess

    marker = tmp_path / "unwound"
    # A "server" that starts a child through the runner's pre-exec hook, then gets killed.
    server = subprocess.Popen([sys.executable, "-c", f"""
import subprocess, sys, time
from shipline.server.runner import _die_with_parent
subprocess.Popen([sys.executable, "-c", '''
import signal, sys, time, pathlib
signal.signal(signal.SIGTERM, lambda *a: (pathlib.Path({str(marker)!r}).write_text("unwound"), sys.exit(130)))
time.sleep(60)
'''], preexec_fn=_die_with_parent, start_new_session=True)
time.sleep(60)
"""])
    time.sleep(1.5)
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.read_text() == "unwound"
