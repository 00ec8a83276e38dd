import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from shipline.cancel import Cancel
from shipline.executors.local import LocalExecutor


def test_a_request_is_raised_where_it_is_checked() -> None:
    cancel = Cancel()
    cancel.check()
    cancel.request("interrupted by SIGINT")
    cancel.request("interrupted by SIGTERM")  # the first reason stays
    with pytest.raises(KeyboardInterrupt, match="SIGINT"):
        cancel.check()


def test_a_child_is_cancelled_alone_or_with_its_parent() -> None:
    run = Cancel()
    local = run.child()
    local.request("the hosts said: already live")
    run.check()  # the run goes on
    with pytest.raises(KeyboardInterrupt, match="already live"):
        local.check()
    other = run.child()
    run.request("interrupted by SIGINT")
    with pytest.raises(KeyboardInterrupt, match="SIGINT"):
        other.check()
    with pytest.raises(KeyboardInterrupt, match="SIGINT"):
        run.child().check()  # made after the request: cancelled from the start


def test_a_shield_defers_it_to_its_end() -> None:
    cancel = Cancel()
    done = []
    with pytest.raises(KeyboardInterrupt), cancel.shielded():
        cancel.request("interrupted by SIGTERM")
        cancel.check()
        cancel.sleep(0.01)
        done.append("undo finished")
    assert done == ["undo finished"]


def test_sleep_ends_early_when_cancelled() -> None:
    cancel = Cancel()
    threading.Timer(0.2, cancel.request, ["interrupted by SIGTERM"]).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        cancel.sleep(30)
    assert time.monotonic() - start < 10


def test_signals_only_set_the_flag_and_handlers_are_restored() -> None:
    cancel = Cancel()
    before = signal.getsignal(signal.SIGTERM)
    with cancel.on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not cancel.requested and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cancel.requested
    assert signal.getsignal(signal.SIGTERM) is before
    with pytest.raises(KeyboardInterrupt, match="interrupted by SIGTERM"):
        cancel.check()


def test_a_cancelled_local_command_is_stopped_and_raises() -> None:
    cancel = Cancel()
    ex = LocalExecutor(cancel=cancel)
    marker = f"shipline-cancel-test-{os.getpid()}"
    threading.Timer(0.5, cancel.request, ["interrupted by SIGINT"]).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        ex.run([sys.executable, "-c", f"import time; print('{marker}', flush=True); time.sleep(60)"])
    assert time.monotonic() - start < 10
    time.sleep(0.2)
    still = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.strip()
    assert not still, "the command was stopped, not left running"
