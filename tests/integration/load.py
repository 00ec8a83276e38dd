"""An open-loop HTTP load generator that records every request, failed ones included.

Zero-downtime claims are proved by counting what failed, so this instrument cannot be one that only
reports successes (hey's csv) or that slows down when the target does (closed-loop tools hide an outage
as "fewer requests"). It is independent of shipline: standard library only, loopback targets only.

    with LoadGenerator("https://127.0.0.1:8443/api/version", rate=200) as gen:
        gen.mark("deploy")
        ...
    result = gen.result
    assert result.failed == 0, result.summary()
"""

from __future__ import annotations

import errno
import http.client
import ipaddress
import itertools
import json
import math
import select
import ssl
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

OK_STATUSES: frozenset[int] = frozenset(range(200, 300))
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})


@dataclass(frozen=True, slots=True)
class Record:
    """One request as the client saw it; times are seconds on the generator's monotonic clock."""

    start: float
    latency: float
    status: int | None
    error: str | None  # kind of failure below HTTP ('ConnectionRefused', 'timeout', ...), None if a response came whole
    path: str
    lateness: float = 0.0  # how far behind its schedule slot it was sent: the client, not the server, was slow
    reused: bool = False  # sent on a kept-alive connection (a failure there may be a close race, not an outage)
    retried: str | None = None  # error kind of a first attempt on a stale connection that was retried (retry_stale)
    worker: int = 0

    @property
    def end(self) -> float:
        return self.start + self.latency

    def is_ok(self, ok_statuses: Collection[int] = OK_STATUSES) -> bool:
        """A response counts only if it arrived whole with an accepted status."""
        return self.error is None and self.status is not None and self.status in ok_statuses

    def kind(self, ok_statuses: Collection[int] = OK_STATUSES) -> str:
        """'ok', 'HTTP 502' or the error kind: the key failures are grouped by."""
        if self.is_ok(ok_statuses):
            return "ok"
        if self.error is not None:
            return self.error
        return f"HTTP {self.status}"


@dataclass
class LoadResult:
    """Every request of one run plus the phase marks, with the numbers a zero-downtime assertion needs."""

    records: list[Record]
    marks: list[tuple[float, str]] = field(default_factory=list)
    duration: float = 0.0  # seconds during which requests were issued
    rate: float = 0.0  # the target rate
    workers: int = 0
    connects: int = 0  # connections opened: about `workers` when keep-alive works
    skipped: int = 0  # schedule slots dropped because a worker was still busy (the target was slow)
    hit_max_duration: bool = False
    ok_statuses: frozenset[int] = OK_STATUSES

    @property
    def total(self) -> int:
        return len(self.records)

    @property
    def ok(self) -> int:
        return sum(1 for r in self.records if r.is_ok(self.ok_statuses))

    @property
    def failed(self) -> int:
        return self.total - self.ok

    @property
    def failures(self) -> list[Record]:
        return [r for r in self.records if not r.is_ok(self.ok_statuses)]

    def failures_by_kind(self) -> Counter[str]:
        """Failed requests counted by HTTP status ('HTTP 502') or error kind ('ConnectionRefused')."""
        return Counter(r.kind(self.ok_statuses) for r in self.failures)

    @property
    def rate_achieved(self) -> float:
        """Requests started per second over the issuing window."""
        return self.total / self.duration if self.duration > 0 else 0.0

    @property
    def stale_retries(self) -> int:
        return sum(1 for r in self.records if r.retried is not None)

    @property
    def max_lateness(self) -> float:
        return max((r.lateness for r in self.records), default=0.0)

    def longest_gap_span(self) -> tuple[float, float]:
        """(from, to) of the longest time without a successful response completing.

        The window runs from the first request's start to the last completion of any request, so an
        outage at the very start or end counts too. Completions, not starts, because a user waits for
        the answer: a request sent before an outage that hangs through it did not serve anyone.
        """
        if not self.records:
            return (0.0, 0.0)
        lo = min(r.start for r in self.records)
        hi = max(r.end for r in self.records)
        points = [lo, *sorted(r.end for r in self.records if r.is_ok(self.ok_statuses)), hi]
        best = (lo, lo)
        for a, b in itertools.pairwise(points):
            if b - a > best[1] - best[0]:
                best = (a, b)
        return best

    def longest_gap(self) -> float:
        """Seconds of the longest stretch without a successful completion (see longest_gap_span)."""
        a, b = self.longest_gap_span()
        return b - a

    def latency_quantile(self, q: float) -> float:
        """Latency quantile of the successful requests (failures would mix timeouts with refusals)."""
        lat = sorted(r.latency for r in self.records if r.is_ok(self.ok_statuses))
        if not lat:
            return 0.0
        return lat[min(len(lat) - 1, max(0, math.ceil(q * len(lat)) - 1))]

    def summary(self) -> str:
        """One line for assertion messages and reports."""
        kinds = ", ".join(f"{k}: {n}" for k, n in self.failures_by_kind().most_common()) or "none"
        return (f"{self.total} requests in {self.duration:.1f}s ({self.rate_achieved:.0f}/s of {self.rate:.0f}/s), "
                f"{self.failed} failed ({kinds}), longest gap {self.longest_gap() * 1000:.0f} ms, "
                f"p50 {self.latency_quantile(0.5) * 1000:.1f} ms, p99 {self.latency_quantile(0.99) * 1000:.1f} ms, "
                f"max lateness {self.max_lateness * 1000:.0f} ms, {self.skipped} slots skipped, "
                f"{self.connects} connections")

    def save(self, path: Path) -> None:
        """Raw data next to a bench picture, so a run can be re-plotted or re-judged later."""
        data: dict[str, Any] = {k: v for k, v in asdict(self).items() if k not in ("records", "ok_statuses")}
        data["ok_statuses"] = sorted(self.ok_statuses)
        data["records"] = [asdict(r) for r in self.records]
        path.write_text(json.dumps(data))

    @classmethod
    def load(cls, path: Path) -> LoadResult:
        data = json.loads(path.read_text())
        data["records"] = [Record(**r) for r in data["records"]]
        data["marks"] = [(float(t), str(label)) for t, label in data["marks"]]
        data["ok_statuses"] = frozenset(data["ok_statuses"])
        return cls(**data)


def check_loopback(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an http(s) URL on this machine; anything else is a ValueError.

    A load generator aimed at the wrong host is a denial-of-service tool, so it refuses to be one.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{url!r}: only http and https URLs")
    host = parts.hostname or ""
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"{url!r}: load is only sent to loopback addresses (127.0.0.0/8, ::1, localhost)")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port, path


def error_kind(exc: BaseException) -> str:
    """A short, stable name for a failure, so failures can be grouped and asserted on."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, http.client.RemoteDisconnected):  # before ConnectionResetError: it is one
        return "RemoteDisconnected"
    named: list[tuple[type[BaseException], str]] = [
        (ConnectionRefusedError, "ConnectionRefused"),
        (ConnectionResetError, "ConnectionReset"),
        (ConnectionAbortedError, "ConnectionAborted"),
        (BrokenPipeError, "BrokenPipe"),
        (ssl.SSLCertVerificationError, "SSLCertVerification"),
        (ssl.SSLEOFError, "SSLEOF"),
        (ssl.SSLZeroReturnError, "SSLEOF"),
        (ssl.SSLError, "SSLError"),
        (http.client.IncompleteRead, "IncompleteRead"),
    ]
    for cls, name in named:
        if isinstance(exc, cls):
            return name
    if isinstance(exc, http.client.HTTPException):
        return type(exc).__name__
    if isinstance(exc, OSError) and exc.errno is not None and exc.errno in errno.errorcode:
        return errno.errorcode[exc.errno]
    return type(exc).__name__


def _ssl_context(verify: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if not verify:  # the test proxies use self-signed certificates
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class _Client:
    """One keep-alive connection, reopened after any error; only its worker thread touches it."""

    def __init__(self, scheme: str, host: str, port: int, timeout: float, ctx: ssl.SSLContext | None) -> None:
        self.scheme, self.host, self.port, self.timeout, self.ctx = scheme, host, port, timeout, ctx
        self.conn: http.client.HTTPConnection | None = None
        self.connects = 0

    def _open(self) -> http.client.HTTPConnection:
        self.connects += 1
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _usable(self) -> bool:
        """False if the server already closed the idle connection (readable while idle means EOF).

        Checking before reuse, as browsers and urllib3 do, keeps a server's normal idle-close from being
        reported as a failed request; a close racing with the send is still reported (see Record.reused).
        """
        sock = self.conn.sock if self.conn is not None else None
        if sock is None:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int | None, str | None, bool]:
        """(status, error kind, reused) of one request; never raises for network trouble."""
        reused = self._usable()
        if not reused:
            self.close()
            self.conn = self._open()
        assert self.conn is not None
        status: int | None = None
        try:
            self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
            status = resp.status
            resp.read()
            if resp.will_close:
                self.close()
            return status, None, reused
        except Exception as exc:  # every failure becomes data, whatever its type
            self.close()
            return status, error_kind(exc), reused


class LoadGenerator:
    """Sends `rate` requests/s to a loopback URL from `workers` threads until stopped, recording each one.

    Open loop: request i is due at i/rate seconds, dealt round-robin to the workers. A worker that is
    still busy when its next slot comes sends as soon as it is free (that request's `lateness` shows by
    how much) and then drops the slots it missed instead of catching up in a burst; `skipped` counts
    them. So a stalled target shows as latency and lateness, never as a hidden pause in the load.
    """

    def __init__(self, url: str, rate: float = 200, workers: int = 16, method: str = "GET",
                 body: bytes | None = None, timeout: float = 5.0, verify_tls: bool = False,
                 paths: list[str] | None = None, *, headers: dict[str, str] | None = None,
                 ok_statuses: Iterable[int] = OK_STATUSES, max_duration: float = 300.0,
                 retry_stale: bool = False) -> None:
        if rate <= 0 or workers < 1 or timeout <= 0 or max_duration <= 0:
            raise ValueError("rate, workers, timeout and max_duration must be positive")
        self.scheme, self.host, self.port, url_path = check_loopback(url)
        self.url = url
        self.rate, self.workers, self.method, self.body = float(rate), workers, method.upper(), body
        self.timeout, self.max_duration = timeout, max_duration
        self.paths = list(paths) if paths else [url_path]
        if not all(p.startswith("/") for p in self.paths):
            raise ValueError("paths must start with '/'")
        self.headers = {"User-Agent": "shipline-load", **(headers or {})}
        self.ok_statuses = frozenset(ok_statuses)
        self.retry_stale = retry_stale and self.method in IDEMPOTENT
        self._ctx = _ssl_context(verify_tls) if self.scheme == "https" else None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._records: list[list[Record]] = [[] for _ in range(workers)]
        self._connects = [0] * workers
        self._skipped = [0] * workers
        self._marks: list[tuple[float, str]] = []
        self._t0 = 0.0
        self._stopped_at: float | None = None
        self.result: LoadResult | None = None

    @property
    def t0(self) -> float:
        """time.monotonic() at start: converts other monotonic timestamps to this run's clock."""
        return self._t0

    def now(self) -> float:
        """Seconds since start on the clock of the records and marks."""
        return time.monotonic() - self._t0

    def mark(self, label: str) -> float:
        """Note a phase change ('switch backend') at the current time; returns that time."""
        t = self.now()
        with self._lock:
            self._marks.append((t, label))
        return t

    def start(self) -> Self:
        if self._threads:
            raise RuntimeError("a LoadGenerator runs once")
        self._t0 = time.monotonic()
        for k in range(self.workers):
            th = threading.Thread(target=self._worker, args=(k,), name=f"load-{k}", daemon=True)
            self._threads.append(th)
            th.start()
        return self

    def stop(self) -> LoadResult:
        """Stop issuing, wait for requests in flight (at most `timeout` more), return every record."""
        if self.result is not None:
            return self.result
        if not self._threads:
            raise RuntimeError("not started")
        with self._lock:
            if self._stopped_at is None:
                self._stopped_at = min(self.now(), self.max_duration)
        self._stop.set()
        deadline = time.monotonic() + self.timeout * 2 + 1
        for th in self._threads:
            th.join(max(0.0, deadline - time.monotonic()))
        records = sorted((r for rs in self._records for r in rs), key=lambda r: r.start)
        with self._lock:
            marks = sorted(self._marks)
        self.result = LoadResult(
            records=records, marks=marks, duration=self._stopped_at, rate=self.rate, workers=self.workers,
            connects=sum(self._connects), skipped=sum(self._skipped),
            hit_max_duration=self._stopped_at >= self.max_duration, ok_statuses=self.ok_statuses)
        return self.result

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _slot_time(self, k: int, n: int) -> float:
        return (k + n * self.workers) / self.rate

    def _worker(self, k: int) -> None:
        client = _Client(self.scheme, self.host, self.port, self.timeout, self._ctx)
        out = self._records[k]
        n = 0
        try:
            while True:
                due = self._slot_time(k, n)
                if due >= self.max_duration:
                    with self._lock:
                        if self._stopped_at is None:
                            self._stopped_at = self.max_duration
                    return
                wait = due - self.now()
                if self._stop.wait(wait) if wait > 0 else self._stop.is_set():
                    return
                i = k + n * self.workers
                path = self.paths[i % len(self.paths)]
                start = self.now()
                status, error, reused = client.request(self.method, path, self.body, self.headers)
                retried = None
                if error is not None and reused and self.retry_stale and status is None:
                    retried = error
                    status, error, _ = client.request(self.method, path, self.body, self.headers)
                out.append(Record(start=start, latency=self.now() - start, status=status, error=error,
                                  path=path, lateness=max(0.0, start - due), reused=reused, retried=retried,
                                  worker=k))
                # next slot: the first one after this send; slots passed while busy are dropped, not bunched
                nxt = max(n + 1, math.floor((start * self.rate - k) / self.workers) + 1)
                self._skipped[k] += nxt - n - 1
                n = nxt
        finally:
            self._connects[k] = client.connects
            client.close()


@dataclass
class SlowRequest:
    """Handle on one long request running in its own thread (see slow_request)."""

    url: str
    sent: threading.Event = field(default_factory=threading.Event)
    done_event: threading.Event = field(default_factory=threading.Event)
    started: float = 0.0  # time.monotonic() when sent
    record: Record | None = None

    def done(self) -> bool:
        return self.done_event.is_set()

    def wait(self, timeout: float | None = None) -> Record:
        """The finished request's record; TimeoutError if it is still running after `timeout`."""
        if not self.done_event.wait(timeout):
            raise TimeoutError(f"{self.url} still running")
        assert self.record is not None
        return self.record

    @property
    def status(self) -> int | None:
        return self.record.status if self.record else None


def slow_request(url: str, seconds: float, *, generator: LoadGenerator | None = None,
                 method: str = "GET", body: bytes | None = None, verify_tls: bool = False,
                 headers: dict[str, str] | None = None) -> SlowRequest:
    """Start one long request and return once it has been sent, so the caller knows it is in flight.

    `url` must name an endpoint that takes about `seconds` to answer; a literal "{seconds}" in it is
    replaced by the number (e.g. ".../api/slow?seconds={seconds}"). The client waits up to seconds + 30.
    With `generator`, the record's start is on that run's clock so it can be compared with its marks.
    """
    url = url.replace("{seconds}", f"{seconds:g}")
    scheme, host, port, path = check_loopback(url)
    handle = SlowRequest(url)
    origin = generator.t0 if generator is not None and generator.t0 else time.monotonic()
    ctx = _ssl_context(verify_tls) if scheme == "https" else None
    hdrs = {"User-Agent": "shipline-load-slow", **(headers or {})}

    def run() -> None:
        conn: http.client.HTTPConnection = (
            http.client.HTTPSConnection(host, port, timeout=seconds + 30, context=ctx) if scheme == "https"
            else http.client.HTTPConnection(host, port, timeout=seconds + 30))
        status: int | None = None
        error: str | None = None
        handle.started = time.monotonic()
        try:
            try:
                conn.request(method, path, body=body, headers=hdrs)
            finally:
                handle.sent.set()
            resp = conn.getresponse()
            status = resp.status
            resp.read()
        except Exception as exc:  # recorded, like every load request
            error = error_kind(exc)
        finally:
            conn.close()
            end = time.monotonic()
            handle.record = Record(start=handle.started - origin, latency=end - handle.started,
                                   status=status, error=error, path=path)
            handle.done_event.set()

    threading.Thread(target=run, name="slow-request", daemon=True).start()
    handle.sent.wait(30)
    return handle


def _cli() -> None:
    """`python tests/integration/load.py URL [rate] [seconds]`: a quick look at a running endpoint."""
    import sys

    url = sys.argv[1]
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 200
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 5
    with LoadGenerator(url, rate=rate) as gen:
        time.sleep(seconds)
    assert gen.result is not None
    print(gen.result.summary())


if __name__ == "__main__":
    _cli()
