"""HTTP layer: routing and JSON, independent of the database implementation (tests pass a fake)."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

log = logging.getLogger("app")

MAX_BODY = 64 * 1024
MAX_TEXT = 1000
MAX_SLOW = 60.0


class Store(Protocol):
    def ping(self) -> None: ...
    def list_items(self) -> list[dict]: ...
    def add_item(self, text: str) -> dict: ...


class BadRequest(Exception):
    pass


def parse_new_item(body: bytes) -> str:
    """Validate a POST /api/items body and return the item text."""
    try:
        data = json.loads(body or b"null")
    except ValueError as exc:
        raise BadRequest("body is not valid JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise BadRequest('expected a JSON object {"text": "..."}')
    text = data["text"].strip()
    if not text:
        raise BadRequest("text must not be empty")
    if len(text) > MAX_TEXT:
        raise BadRequest(f"text is longer than {MAX_TEXT} characters")
    return text


class App:
    def __init__(self, store: Store, version: str) -> None:
        self.store = store
        self.version = version

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        path, _, qs = path.partition("?")
        query = dict(p.partition("=")[::2] for p in qs.split("&") if p)
        if path == "/api/health" and method == "GET":
            try:
                self.store.ping()
            except Exception as exc:  # any DB failure means "not healthy"
                log.warning("health check failed: %s", exc)
                return 503, {"status": "error", "database": "unreachable"}
            return 200, {"status": "ok", "database": "ok"}
        if path == "/api/version" and method == "GET":
            return 200, {"version": self.version}
        if path == "/api/slow" and method == "GET":
            # A deliberately long request: lets deploy tests prove in-flight requests survive a switch.
            seconds = min(float(query.get("seconds", "1")), MAX_SLOW)
            time.sleep(seconds)
            return 200, {"version": self.version, "slept": seconds}
        if path == "/api/items":
            if method == "GET":
                return 200, self.store.list_items()
            if method == "POST":
                try:
                    text = parse_new_item(body)
                except BadRequest as exc:
                    return 400, {"error": str(exc)}
                return 201, self.store.add_item(text)
            return 405, {"error": "method not allowed"}
        return 404, {"error": "not found"}


class InFlight:
    """Counts requests being handled, so shutdown can wait for them instead of cutting them off."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def __enter__(self) -> None:
        with self._idle:
            self._count += 1

    def __exit__(self, *exc: object) -> None:
        with self._idle:
            self._count -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout)


class Handler(BaseHTTPRequestHandler):
    app: App  # set by make_server
    in_flight: InFlight
    protocol_version = "HTTP/1.1"

    def _serve(self, method: str) -> None:
        with self.in_flight:
            self._serve_one(method)

    def _serve_one(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            status, payload = 413, {"error": "body too large"}
            self.close_connection = True
        else:
            body = self.rfile.read(length) if length else b""
            try:
                status, payload = self.app.handle(method, self.path, body)
            except Exception:
                log.exception("request failed: %s %s", method, self.path)
                status, payload = 500, {"error": "internal error"}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, fmt: str, *args: Any) -> None:
        # Health checks every 2 s would drown the log; keep everything else.
        if not self.path.startswith("/api/health"):
            log.info("%s %s", self.address_string(), fmt % args)


def make_server(app: App, host: str = "0.0.0.0", port: int = 8000) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"app": app, "in_flight": InFlight()})
    return Server((host, port), handler)


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default backlog of 5 drops connections under load
    daemon_threads = True  # do not wait for idle keep-alive connections on shutdown (in-flight ones are awaited)
