"""Runs one queued run: fetch its commit, then `shipline deploy` (or `rollback`) as a subprocess in the checkout.

The subprocess writes to a file under the data directory (not a pipe): if the server dies, the deploy is told to
stop (SIGTERM on parent death, which unwinds it like Ctrl-C) and can still write how it unwound, and the next start
of the server reads the rest into the run's log. Lines are masked again with the app's secrets (multi-line and
split ones included) before they are stored or shown. Cancel and timeout: SIGTERM to the run's process group,
SIGKILL after the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ..secrets import Masker, Secret
from . import notify
from .events import Hub
from .masking import StreamMasker, mask_all
from .queue import ROLLBACK
from .repos import GitFailed, Repos
from .settings import Settings
from .store import CANCELLED, FAILED, INTERRUPTED, RUNNING, SUCCEEDED, TIMED_OUT, Run, Store

STAGE_RE = re.compile(r"^(?:\d\d:\d\d:\d\d)?\s*(?:ok|FAIL)\s+(?P<name>[\w-]+) (?:in|after) (?P<secs>\d+(?:\.\d+)?)s\s*$")
QUIET = 1.0  # seconds without output after which held-back lines are shown
POLL = 0.2
RUN_ENV = "SHIPLINE_SERVE_RUN"  # marks a run's processes, so a restarted server recognises its orphans


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: the server died -> unwind like Ctrl-C


class RunLog:
    """A run's log: masks, stores, notes stage durations and wakes the live viewers."""

    def __init__(self, store: Store, hub: Hub, run: Run, secrets: Iterable[str]) -> None:
        self.store, self.hub, self.run = store, hub, run
        self.masker = StreamMasker(secrets)
        self.stages: dict[str, float] = dict(run.stages)

    def lines(self, lines: Iterable[str], offset: int | None = None, flush: bool = False) -> None:
        out: list[str] = []
        for line in lines:
            out += self.masker.feed(line)
        if flush:
            out += self.masker.flush()
        for line in out:
            m = STAGE_RE.match(line)
            if m:
                self.stages[m["name"]] = float(m["secs"])
        if out or offset is not None:
            self.store.append_log(self.run.id, out, offset)
        if out and self.stages != self.run.stages:
            self.store.update_run(self.run.id, stages=self.stages)
            self.run.stages = dict(self.stages)
        if out:
            self.hub.notify()

    def note(self, text: str) -> None:
        self.lines([text], flush=True)


class OutputFile:
    """Reads what the subprocess appended to its output file since the last call, as whole lines."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path, self.offset, self._partial = path, offset, b""

    def read(self, final: bool = False) -> list[str]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            data = b""
        self.offset += len(data)
        data = self._partial + data
        parts = data.split(b"\n")
        self._partial = b"" if final else parts.pop()
        if final and parts and parts[-1] == b"":
            parts.pop()
        # A carriage return redraws a terminal line: keep what would be left on screen.
        return [p.decode("utf-8", "replace").rstrip("\r").rsplit("\r", 1)[-1] for p in parts]

    @property
    def consumed(self) -> int:
        return self.offset - len(self._partial)


class Runner:
    def __init__(self, settings: Settings, store: Store, hub: Hub, repos: Repos,
                 secrets: Callable[[str], dict[str, str]], server_secrets: Callable[[], list[str]]) -> None:
        self.settings, self.store, self.hub, self.repos = settings, store, hub, repos
        self._secrets = secrets  # app -> its secrets (name -> value)
        self._server_secrets = server_secrets  # the operator token, webhook secrets, hook tokens

    def masked_values(self, app: str) -> list[str]:
        return [*self._secrets(app).values(), *self._server_secrets()]

    def output_path(self, run_id: int) -> Path:
        return self.settings.data_path / "runs" / f"{run_id}.out"

    async def execute(self, run: Run) -> None:
        log = RunLog(self.store, self.hub, run, self.masked_values(run.app))
        self.hub.notify()
        status, reason, code = FAILED, "", None
        try:
            if run.kind == ROLLBACK and self.repos.has_checkout(run.app):
                sha = ""  # the hosts keep every release's files: the checkout only provides shipline.yml
            else:
                sha = await self.repos.prepare(run.app, run.sha or None, run.source == "git-push", log.note)
            if run.kind == ROLLBACK:
                argv = ["rollback", str(run.release)]
            else:
                argv = ["deploy", "--ref", sha, "--source", run.source, "--actor", run.actor]
            # -v: the dashboard keeps a run's whole log, every line of every command, not only a failure's.
            argv = [sys.executable, "-m", "shipline", *argv, "-v", "--config", str(self.repos.config_path(run.app))]
            status, reason, code = await self.spawn(run, argv, log)
        except GitFailed as exc:
            reason = str(exc)
            log.note(f"error: {reason}")
        except Exception as exc:  # the run must end recorded whatever happened; the server keeps going
            reason = f"shipline serve failed to run it: {type(exc).__name__}: {exc}"
            log.note(f"error: {reason}")
        self.store.finish_run(run.id, status, reason, code)
        final = self.store.run(run.id)
        assert final
        log.note(f"==> run #{run.id} {final.status}" + (f": {final.reason}" if final.reason else ""))
        self.output_path(run.id).unlink(missing_ok=True)
        self.hub.notify()
        await self._notify(final, log)

    def env(self, app_name: str, run_id: int | None = None) -> dict[str, str]:
        """The environment of a `shipline` subprocess for the app: the app's env and secrets, none of the server's."""
        app = self.settings.apps[app_name]
        server = set(self._server_secrets())
        env = {k: v for k, v in os.environ.items() if v not in server}  # the deploy needs none of the server's
        env.update(app.env)
        env.update(self._secrets(app_name))  # the deploy reads secrets from its environment first
        env.update({"PYTHONUNBUFFERED": "1", "NO_COLOR": "1", "TERM": "dumb"})
        if run_id is not None:
            env[RUN_ENV] = str(run_id)
        return env

    async def spawn(self, run: Run, argv: list[str], log: RunLog) -> tuple[str, str, int | None]:
        app = self.settings.apps[run.app]
        path = self.output_path(run.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=fd, stderr=asyncio.subprocess.STDOUT,
                cwd=str(self.repos.config_path(run.app).parent), env=self.env(run.app, run.id), start_new_session=True,
                preexec_fn=_die_with_parent)
        finally:
            os.close(fd)
        self.store.update_run(run.id, pid=proc.pid)
        out = OutputFile(path)
        deadline = time.monotonic() + app.timeout
        stopping: tuple[str, str] | None = None
        kill_at = 0.0
        last_output = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), POLL)
            lines = out.read(final=proc.returncode is not None)
            if lines:
                last_output = time.monotonic()
            quiet = log.masker.holding and time.monotonic() - last_output > QUIET
            log.lines(lines, out.consumed, flush=quiet or proc.returncode is not None)
            if proc.returncode is not None:
                break
            current = self.store.run(run.id)
            if stopping is None and current and current.cancel:
                stopping = (CANCELLED, current.reason or "cancelled")
            elif stopping is None and time.monotonic() > deadline:
                stopping = (TIMED_OUT, f"timed out after {app.timeout:.0f}s; stopped like Ctrl-C")
            if stopping and not kill_at:
                log.note(f"==> stopping: {stopping[1]} (SIGTERM; SIGKILL in {app.cancel_grace:.0f}s if still running)")
                _signal_group(proc.pid, signal.SIGTERM)
                kill_at = time.monotonic() + app.cancel_grace
            elif kill_at and time.monotonic() > kill_at:
                log.note("==> still running after the grace period: SIGKILL")
                _signal_group(proc.pid, signal.SIGKILL)
                kill_at = float("inf")
        _signal_group(proc.pid, signal.SIGKILL)  # whatever the deploy left behind in its group
        code = proc.returncode
        if stopping:
            return stopping[0], stopping[1], code
        if code == 0:
            return SUCCEEDED, "", code
        return FAILED, _reason(self.store.log(run.id)) or f"exit status {code}", code

    async def _notify(self, run: Run, log: RunLog) -> None:
        url = self.settings.apps[run.app].notify
        if not url:
            return
        mask = Masker([Secret(str(i), v) for i, v in enumerate(self.masked_values(run.app))])
        problem = await notify.post(url, mask_all(notify.summary(run.as_dict(), self.settings.local_url()), mask))
        if problem:
            log.note(f"warning: {problem}")

    async def recover(self) -> list[int]:
        """After a restart: runs left "running" are stopped if still alive, their output kept, marked interrupted."""
        found = []
        for run in self.store.runs(statuses=(RUNNING,), limit=1000):
            log = RunLog(self.store, self.hub, run, self.masked_values(run.app))
            if run.pid and _ours(run.pid, run.id):
                # On Linux it got SIGTERM when the server died and is unwinding: a second one would cut that short.
                log.note(f"==> shipline serve restarted while this run's process {run.pid} was still unwinding; "
                         "waiting for it")
                if not sys.platform.startswith("linux"):
                    _signal_group(run.pid, signal.SIGTERM)
                deadline = time.monotonic() + self.settings.apps[run.app].cancel_grace if run.app in self.settings.apps else 0
                while _ours(run.pid, run.id) and time.monotonic() < deadline:
                    await asyncio.sleep(POLL)
                _signal_group(run.pid, signal.SIGKILL)
            out = OutputFile(self.output_path(run.id), run.out_offset)
            log.lines(out.read(final=True), out.consumed, flush=True)
            reason = ("shipline serve stopped during this run; the deploy was interrupted (not replayed) and the next "
                      "run heals the hosts")
            self.store.finish_run(run.id, INTERRUPTED, reason)
            log.note(f"==> run #{run.id} interrupted: {reason}")
            self.output_path(run.id).unlink(missing_ok=True)
            found.append(run.id)
        return found


def _reason(lines: list[tuple[int, str]]) -> str:
    """Why a deploy failed, as it said: its last `error:` paragraph's first line."""
    for _, line in reversed(lines):
        if line.startswith("error:"):
            return line.removeprefix("error:").strip()
    return ""


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _ours(pid: int, run_id: int) -> bool:
    """Whether `pid` still runs and is that run's deploy (pids are reused)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and f"{RUN_ENV}={run_id}".encode() in environ.split(b"\0")
