"""What executors keep of a command's output: every line reaches the sinks, a bounded tail stays in memory."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipline.executors.base import collect
from shipline.executors.local import LocalExecutor
from shipline.executors.ssh import end_input
from shipline.secrets import Masker, Secret

KEEP_CHARS = 1 << 20  # executors.base.KEEP_CHARS: a 1 MiB tail


def lines(count: int, width: int = 99) -> Iterator[bytes]:
    for i in range(count):
        yield f"{i:08d}".ljust(width, ".").encode() + b"\n"


def test_collect_forwards_every_line_and_keeps_only_the_tail() -> None:
    seen: list[str] = []
    out = collect(lines(50_000), lambda s: s, seen.append)  # about 5 MB
    assert len(seen) == 50_000
    assert len(out) <= KEEP_CHARS + 100
    kept = out.splitlines()
    assert kept[0].endswith("earlier lines not kept]") and kept[-1].startswith("00049999")
    assert int(kept[0].strip("[").split()[0]) + len(kept) - 1 == 50_000


def test_collect_keeps_short_output_whole_and_masked() -> None:
    mask = Masker([Secret("TOKEN", "hunter2-token")])
    assert collect([b"a\n", b"token=hunter2-token\r\n"], mask, None) == "a\ntoken=******\n"


def test_one_huge_line_is_cut_to_its_end() -> None:
    out = collect([b"x" * (3 * KEEP_CHARS) + b"END\n"], lambda s: s, None)
    assert len(out) == KEEP_CHARS + 1 and out.endswith("END\n")


def test_local_command_output_is_bounded_in_its_result() -> None:
    count = 0

    def sink(line: str) -> None:
        nonlocal count
        count += 1

    script = "import sys\nfor i in range(40000): sys.stdout.write(f'{i:08d}' + '.' * 91 + '\\n')"
    res = LocalExecutor().run([sys.executable, "-c", script], on_line=sink)
    assert res.ok and count == 40_000
    assert len(res.output) <= KEEP_CHARS + 100 and res.tail(1).startswith("00039999")


def test_query_keeps_parsed_output_intact_and_apart_from_warnings() -> None:
    """A secret made of digits must not turn `"Pid": 4242` into `"Pid": ******`, nor a warning break the JSON."""
    ex = LocalExecutor(Masker([Secret("PIN", "4242")]))
    script = "import sys; print('WARNING: 4242 is weak', file=sys.stderr); print('{\"Pid\": 4242}')"
    assert ex.query([sys.executable, "-c", script]) == '{"Pid": 4242}\n'
    assert "******" in ex.run([sys.executable, "-c", script]).output, "printed output stays masked"


def test_query_failure_shows_the_masked_error() -> None:
    ex = LocalExecutor(Masker([Secret("TOKEN", "hunter2-token")]))
    try:
        ex.query([sys.executable, "-c", "import sys; sys.exit('bad hunter2-token')"], "read it")
    except Exception as exc:
        assert "read it failed with exit status 1" in str(exc) and "hunter2-token" not in str(exc)
    else:
        raise AssertionError("a failing query must raise")


def test_put_is_atomic_with_its_mode_and_append_adds(tmp_path: Path) -> None:
    ex = LocalExecutor()
    target = tmp_path / "d" / ".env"
    ex.put(str(target), b"A=1\n", 0o600)
    ex.put(str(target), b"A=2\n", 0o600)
    assert target.read_bytes() == b"A=2\n" and (target.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in target.parent.iterdir()] == [".env"], "no temporary file left behind"
    ex.append(str(tmp_path / "ledger"), b"one\n")
    ex.append(str(tmp_path / "ledger"), b"two\n")
    assert (tmp_path / "ledger").read_bytes() == b"one\ntwo\n"


def test_put_can_write_its_temporary_file_outside_a_watched_directory(tmp_path: Path) -> None:
    """Traefik reloads on every event in its directory: the temporary file goes to the parent, and only the
    finished file's rename happens inside."""
    watched = tmp_path / "proxy"
    watched.mkdir()
    seen: list[str] = []
    real_replace = os.replace

    def replace(src: str | Path, dst: str | Path) -> None:
        seen.append(str(src))
        real_replace(src, dst)

    ex = LocalExecutor()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("shipline.executors.local.os.replace", replace)
        ex.put(str(watched / "shop-backend.yml"), b"http: {}\n", tmp_dir=str(tmp_path))
    assert seen == [str(tmp_path / ".shop-backend.yml.shipline-tmp")]
    assert [p.name for p in watched.iterdir()] == ["shop-backend.yml"]
    assert (watched / "shop-backend.yml").read_bytes() == b"http: {}\n"


def test_the_eof_on_a_commands_stdin_is_sent_under_the_channels_lock() -> None:
    """Sent after the lock is released (as paramiko's shutdown_write does), it can follow the CLOSE that the
    transport thread sends when the command ends meanwhile, and OpenSSH then drops the whole connection."""
    sent: list[tuple[str, bool]] = []

    class Channel:
        lock = threading.Lock()
        eof_sent = False

        def _send_eof(self) -> str | None:
            if self.eof_sent:
                return None
            self.eof_sent = True
            return "EOF"

    chan = Channel()

    class Transport:
        def _send_user_message(self, message: str) -> None:
            sent.append((message, chan.lock.locked()))

    chan.transport = Transport()  # type: ignore[attr-defined]
    end_input(chan)  # type: ignore[arg-type]
    end_input(chan)  # type: ignore[arg-type]  # once only, like shutdown_write
    assert sent == [("EOF", True)]
