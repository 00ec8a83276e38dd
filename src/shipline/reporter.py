"""Progress a person can follow: every stage announces itself and reports its duration.

The pipeline and the deployer report events (stages, info, warnings, errors) and feed each command's output
to a sink named after its task ("build backend", "test unit", a host). The same events render three ways:

- live, on a terminal: one line per running stage and per task, with its state, elapsed time and last
  output line, redrawn in place (rich Live, as `docker compose` and BuildKit do); a finished stage leaves
  one summary line, plus one per task;
- plain, without a terminal or in CI: timestamped lines, a stable `ok  <stage> in 1.2s` per stage, one
  line per task when it starts and one with its result;
- verbose (`-v`): plain lines plus every output line, prefixed by its task.

In every mode, the whole output of a task whose command failed is printed once its stage fails (kept in a
temporary file beyond 1 MiB, so a long build log costs no memory), and every text is masked.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from .secrets import Masker

SPOOL_BYTES = 1 << 20  # a task's log stays in memory up to this size, then moves to a temporary file


@dataclass
class Task:
    """One line of progress inside a stage: a build, a test step, a host. Its whole output is kept in `log`."""

    name: str
    started: float
    log: IO[str] = field(default_factory=lambda: tempfile.SpooledTemporaryFile(  # noqa: SIM115 (closed with its stage)
        SPOOL_BYTES, mode="w+", encoding="utf-8"))
    lines: int = 0
    last: str = ""
    returncode: int | None = None  # of its last command
    ended: float | None = None

    @property
    def failed(self) -> bool:
        return self.returncode not in (None, 0)

    def full_log(self) -> str:
        self.log.seek(0)
        text = self.log.read()
        self.log.seek(0, 2)
        return text


@dataclass
class Stage:
    name: str
    what: str
    started: float
    tasks: dict[str, Task] = field(default_factory=dict)


class Sink:
    """Takes a task's output line by line; executors also tell it each command's exit status (`end`)."""

    def __init__(self, reporter: Reporter, task: Task | None, prefix: str) -> None:
        self._reporter, self._task, self._prefix = reporter, task, prefix

    def __call__(self, line: str) -> None:
        self._reporter._output(self._task, self._prefix, line)

    def end(self, returncode: int) -> None:
        if self._task is not None:
            self._reporter._end(self._task, returncode)


class Reporter:
    """Thread-safe (parallel builds report through it); masks every line it prints."""

    def __init__(self, console: Console, masker: Masker | None = None, clock: Callable[[], float] = time.monotonic,
                 *, live: bool | None = None, verbose: bool = False,
                 now: Callable[[], datetime] = datetime.now) -> None:
        self.console = console
        self.mask = masker or Masker()
        self.durations: dict[str, float] = {}
        self.verbose = verbose
        self.live = (console.is_terminal and not console.is_dumb_terminal if live is None else live) and not verbose
        self._clock = clock
        self._now = now
        self._lock = threading.RLock()
        self._stages: list[Stage] = []
        self._live: Live | None = None
        # Stages may run at the same time (the local build beside the hosts' lock): a thread's output goes to
        # the stage it started, else to the newest.
        self._threads = threading.local()

    # -- what the pipeline and the deployer call ---------------------------------------------------------

    @contextmanager
    def stage(self, name: str, what: str = "") -> Iterator[None]:
        stage = Stage(name, self.mask(what), self._clock())
        with self._lock:
            self._stages.append(stage)
        own = self._own()
        own.append(stage)
        if self.live:
            self._start_live()
        else:
            self._print(("==>", "bold cyan"), " ", (name, "bold"), f" {stage.what}" if stage.what else "")
        try:
            yield
        except BaseException as exc:
            self._finish(stage, ok=False, interrupted=isinstance(exc, KeyboardInterrupt))
            raise
        finally:
            own.remove(stage)
        self._finish(stage, ok=True)

    def _own(self) -> list[Stage]:
        """The stages this thread started and has not finished."""
        own: list[Stage] | None = getattr(self._threads, "stages", None)
        if own is None:
            own = self._threads.stages = []
        return own

    def sink(self, prefix: str) -> Sink:
        """Where a command's output goes: the task `prefix` of the running stage (created on first use)."""
        own = self._own()
        with self._lock:
            if not self._stages:
                return Sink(self, None, prefix)
            stage = own[-1] if own else self._stages[-1]
            task = stage.tasks.get(prefix)
            new = task is None
            if task is None:
                task = stage.tasks[prefix] = Task(prefix, self._clock())
            elif task.ended is not None:
                task.ended = None  # a new command of a task that seemed done
        if new and not self.live and not self.verbose:
            self._print(f"    {prefix} ...")
        return Sink(self, task, prefix)

    def line(self, prefix: str, text: str) -> None:
        self.sink(prefix)(text)

    def info(self, text: str) -> None:
        self._print(f"    {self.mask(text)}")

    def warn(self, text: str) -> None:
        self._print(("warning:", "yellow"), " ", self.mask(text))

    def error(self, text: str) -> None:
        self._print(("error:", "bold red"), " ", self.mask(text))

    # -- events from sinks --------------------------------------------------------------------------------

    def _output(self, task: Task | None, prefix: str, line: str) -> None:
        line = self.mask(line)
        with self._lock:
            if task is not None and not task.log.closed:
                task.log.write(line + "\n")
                task.lines += 1
                task.last = line
        if self.verbose:
            self._print((f"{prefix} |", "dim"), " ", line)

    def _end(self, task: Task, returncode: int) -> None:
        with self._lock:
            if not task.failed:  # a task stays failed (parallel pushes share one): its log is printed if the stage fails
                task.returncode = returncode
            task.ended = self._clock()

    # -- rendering ----------------------------------------------------------------------------------------

    def _print(self, *parts: str | tuple[str, str]) -> None:
        """Styles come from (text, style) pairs, never from markup, so `[...]` in any text prints as written.

        Never called under the reporter's lock: the live display's refresh takes that lock while it holds
        the console's, so printing under it could deadlock.
        """
        text = Text.assemble(*parts)
        if not self.live:
            text = Text.assemble((self._now().strftime("%H:%M:%S"), "dim"), " ", text)
        self.console.print(text, highlight=False, soft_wrap=True)

    def _finish(self, stage: Stage, *, ok: bool, interrupted: bool = False) -> None:
        end = self._clock()
        with self._lock:
            took = self.durations[stage.name] = end - stage.started
            self._stages.remove(stage)
            live = self._live if not self._stages else None
            if live is not None:
                self._live = None
            tasks = list(stage.tasks.values())
        if live is not None:
            live.stop()
        if ok:
            self._print((" ok ", "bold green"), " ", (stage.name, "bold"), f" in {took:.1f}s")
        else:
            self._print(("FAIL", "bold red"), " ", (stage.name, "bold"), f" after {took:.1f}s")
        for task in tasks:
            done = ok or (task.returncode == 0 and task.ended is not None)
            state, style = ("failed", "red") if task.failed else ("ok", "green") if done else ("stopped", "yellow")
            self._print(f"    {task.name} ", (state, style), f" {(task.ended or end) - task.started:.1f}s, {task.lines} lines")
        for task in tasks:
            if task.failed and not interrupted and not self.verbose:  # verbose output showed every line already
                self._dump(task)
            with self._lock:
                task.log.close()

    def _dump(self, task: Task) -> None:
        with self._lock:
            text = task.full_log().rstrip("\n")
        self._print((f"--- {task.name}: its whole output ({task.lines} lines, exit status {task.returncode}) ---", "bold"))
        self.console.print(Text(text), highlight=False, soft_wrap=True)
        self._print((f"--- end of {task.name} ---", "bold"))

    def _start_live(self) -> None:
        with self._lock:
            if self._live is not None:
                return
            live = self._live = Live(_LiveView(self), console=self.console, refresh_per_second=8, transient=True,
                                     redirect_stdout=False, redirect_stderr=False)
        live.start()

    def _render(self) -> RenderableType:
        now = self._clock()
        with self._lock:
            rows = Table.grid(padding=(0, 1))
            rows.add_column(width=2)
            rows.add_column(no_wrap=True)
            rows.add_column(justify="right", no_wrap=True)
            rows.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
            for stage in self._stages:
                rows.add_row(Spinner("dots", style="cyan"), Text(stage.name, "bold"), f"{now - stage.started:.1f}s",
                             Text(stage.what, "dim"))
                for task in stage.tasks.values():
                    icon: RenderableType = (Text(" x", "red") if task.failed else Text(" ✓", "green")
                                            if task.ended is not None else Spinner("line", style="cyan"))
                    elapsed = (task.ended or now) - task.started
                    rows.add_row(icon, f"  {task.name}", f"{elapsed:.1f}s", Text(task.last, "dim"))
            return Group(rows)


class _LiveView:
    """Rich asks for a fresh rendering at every refresh; the reporter builds it under its lock."""

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter

    def __rich__(self) -> RenderableType:
        return self._reporter._render()
