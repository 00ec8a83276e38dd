"""The load generator measured against real local servers: it must keep its rate and record every failure."""

from __future__ import annotations

import contextlib
import http.client
import itertools
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from integration.load import LoadGenerator, LoadResult, Record, check_loopback, error_kind, slow_request


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; /slow?seconds=N sleeps, /status/N answers N."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        status = 200
        if url.path == "/slow":
            time.sleep(float(parse_qs(url.query)["seconds"][0]))
        elif url.path.startswith("/status/"):
            status = int(url.path.rsplit("/", 1)[1])
        body = b"ok\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    """A local server that can be stopped the hard way (all connections cut) and started again on its port."""

    daemon_threads = True

    def __init__(self, port: int = 0, ctx: ssl.SSLContext | None = None) -> None:
        self.ctx = ctx
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def get_request(self) -> tuple[socket.socket, object]:
        sock, addr = self.socket.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body go in two writes
        if self.ctx is not None:
            # the handshake happens on first read, in the connection's own thread, not in the accept loop
            sock = self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self.conns_lock:
            self.conns.add(sock)
        return sock, addr

    def stop(self) -> None:
        """Like a crashed proxy: no listener, every open connection reset."""
        self.shutdown()
        self.server_close()
        with self.conns_lock:
            for s in self.conns:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self.conns.clear()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # cut connections are the point of some tests

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.stop()


def test_sustains_the_rate_on_plain_http(server: Server) -> None:
    with LoadGenerator(f"http://127.0.0.1:{server.port}/", rate=200, workers=16) as gen:
        time.sleep(2)
    res = gen.stop()
    assert res.rate_achieved >= 150, res.summary()
    assert res.failed == 0, res.summary()
    assert res.connects <= 16 + 2, "keep-alive: one connection per worker"
    assert res.longest_gap() < 0.5, res.summary()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command for a self-signed cert")
def test_https_with_self_signed_cert_keeps_connections_alive(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = Server(ctx=ctx)
    try:
        with LoadGenerator(f"https://127.0.0.1:{srv.port}/", rate=200, workers=8) as gen:
            time.sleep(1.5)
        res = gen.stop()
    finally:
        srv.stop()
    assert res.failed == 0, res.summary()
    assert res.rate_achieved >= 100, res.summary()  # the rate itself is asserted over plain HTTP above
    assert res.connects <= 8 + 2, res.summary()


def test_records_failures_while_the_server_is_down_and_recovers() -> None:
    srv = Server()
    port = srv.port
    with LoadGenerator(f"http://127.0.0.1:{port}/", rate=200, workers=8, timeout=2) as gen:
        time.sleep(0.7)
        cut = gen.now()
        srv.stop()
        down = gen.mark("server down")
        time.sleep(0.8)
        srv = Server(port)
        up = gen.mark("server up")
        time.sleep(0.7)
    srv.stop()
    res = gen.stop()
    assert res.marks == [(down, "server down"), (up, "server up")]
    kinds = res.failures_by_kind()
    assert res.failed > 0 and all(r.error is not None for r in res.failures), kinds
    assert "ConnectionRefused" in kinds, kinds
    # requests caught in flight by the cut fail in whichever way the cut met them
    assert set(kinds) <= {"ConnectionRefused", "ConnectionReset", "RemoteDisconnected", "BrokenPipe",
                          "IncompleteRead"}, kinds
    assert all(cut - 0.2 <= r.start <= up + 0.05 for r in res.failures)
    gap_from, gap_to = res.longest_gap_span()
    assert gap_from <= down + 0.1 and gap_to >= up, (gap_from, gap_to, down, up)
    assert res.longest_gap() < (up - cut) + 0.5
    assert any(r.is_ok() and r.start > up for r in res.records), "load resumes once the server is back"


def test_http_error_statuses_are_failures_unless_accepted(server: Server) -> None:
    url = f"http://127.0.0.1:{server.port}/"
    with LoadGenerator(url, rate=100, workers=2, paths=["/", "/status/503"]) as gen:
        time.sleep(0.3)
    res = gen.stop()
    assert {r.path for r in res.records} == {"/", "/status/503"}
    assert set(res.failures_by_kind()) == {"HTTP 503"}
    assert all(r.status == 503 and r.error is None for r in res.failures)
    with LoadGenerator(url, rate=100, workers=2, paths=["/status/404"], ok_statuses=[200, 404]) as gen:
        time.sleep(0.2)
    assert gen.stop().failed == 0


def test_a_slow_target_shows_as_lateness_not_as_a_burst(server: Server) -> None:
    with LoadGenerator(f"http://127.0.0.1:{server.port}/slow?seconds=0.3", rate=20, workers=2) as gen:
        time.sleep(1.5)
    res = gen.stop()
    assert res.failed == 0
    assert res.skipped > 0 and res.max_lateness > 0.15, res.summary()
    for k in range(2):
        starts = [r.start for r in res.records if r.worker == k]
        assert all(b - a >= 0.28 for a, b in itertools.pairwise(starts)), starts
    assert res.total <= 12, "a busy worker never fires a backlog of slots at once"


def test_stops_by_itself_after_max_duration(server: Server) -> None:
    gen = LoadGenerator(f"http://127.0.0.1:{server.port}/", rate=100, workers=2, max_duration=0.3).start()
    time.sleep(0.6)
    res = gen.stop()
    assert res.hit_max_duration and res.duration == 0.3
    assert 0 < res.total <= 30 and all(r.start < 0.3 for r in res.records)


def test_slow_request_is_in_flight_when_it_returns(server: Server) -> None:
    t = time.monotonic()
    handle = slow_request(f"http://127.0.0.1:{server.port}/slow?seconds={{seconds}}", 0.5)
    assert handle.sent.is_set() and not handle.done()
    assert time.monotonic() - t < 0.3
    rec = handle.wait(5)
    assert rec.status == 200 and rec.error is None and rec.latency >= 0.5


def test_slow_request_reports_a_cut_connection(server: Server) -> None:
    handle = slow_request(f"http://127.0.0.1:{server.port}/slow?seconds=2", 2)
    time.sleep(0.2)
    server.stop()
    rec = handle.wait(5)
    assert rec.status is None and rec.error in {"RemoteDisconnected", "ConnectionReset"}


@pytest.mark.parametrize("url", ["http://10.0.0.1/", "https://example.com/", "http://192.168.1.1:8080/",
                                 "http://0.0.0.0/", "http://[::2]/", "ftp://127.0.0.1/", "http://localhost.example/"])
def test_refuses_anything_but_loopback(url: str) -> None:
    with pytest.raises(ValueError):
        LoadGenerator(url)
    with pytest.raises(ValueError):
        slow_request(url, 1)


@pytest.mark.parametrize(("url", "expected"), [
    ("http://127.0.0.1:81/a?b=1", ("http", "127.0.0.1", 81, "/a?b=1")),
    ("https://127.9.8.7", ("https", "127.9.8.7", 443, "/")),
    ("http://[::1]:8080/x", ("http", "::1", 8080, "/x")),
    ("https://localhost:8443/", ("https", "localhost", 8443, "/")),
])
def test_accepts_loopback(url: str, expected: tuple[str, str, int, str]) -> None:
    assert check_loopback(url) == expected


def test_error_kinds() -> None:
    assert error_kind(ConnectionRefusedError()) == "ConnectionRefused"
    assert error_kind(http.client.RemoteDisconnected("closed")) == "RemoteDisconnected"
    assert error_kind(TimeoutError()) == "timeout"
    assert error_kind(OSError(113, "No route to host")) == "EHOSTUNREACH"


def rec(start: float, latency: float, status: int | None = 200, error: str | None = None) -> Record:
    return Record(start=start, latency=latency, status=status, error=error, path="/")


def test_longest_gap_counts_completions_and_the_edges() -> None:
    res = LoadResult([rec(0.0, 0.01), rec(0.1, 0.01), rec(0.2, 0.01, 502), rec(0.3, 0.6, None, "timeout"),
                      rec(1.0, 0.01), rec(1.1, 0.01)])
    assert res.longest_gap_span() == pytest.approx((0.11, 1.01))
    # a run that ends in an outage: the gap runs to the last completion of any request
    res = LoadResult([rec(0.0, 0.01), rec(0.1, 0.5, None, "ConnectionRefused")])
    assert res.longest_gap() == pytest.approx(0.59)
    assert LoadResult([]).longest_gap() == 0.0
    assert res.failures_by_kind() == {"ConnectionRefused": 1}


def test_result_round_trips_through_json(tmp_path: Path) -> None:
    res = LoadResult([rec(0.0, 0.01), rec(0.1, 0.2, None, "timeout")], marks=[(0.05, "switch")],
                     duration=0.2, rate=10, workers=1, ok_statuses=frozenset({200}))
    res.save(tmp_path / "r.json")
    assert LoadResult.load(tmp_path / "r.json") == res
