"""HTTP requests to an API on a host's loopback (a proxy's admin API), carried by an executor's TCP tunnel."""

from __future__ import annotations

import http.client
import json
from typing import Any

from .errors import DeployFailed
from .executors.base import Executor


class TunnelHTTPConnection(http.client.HTTPConnection):
    """http.client over a socket-like object the executor opened (paramiko channel or socket)."""

    def __init__(self, ex: Executor, host: str, port: int) -> None:
        super().__init__(host, port, timeout=10)
        self._ex = ex

    def connect(self) -> None:
        self.sock = self._ex.open_tcp(self.host, self.port)


def request(ex: Executor, address: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """(status, parsed JSON or text). `address` is host:port as seen from the executor's machine."""
    host, _, port = address.rpartition(":")
    conn = TunnelHTTPConnection(ex, host, int(port))
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    except OSError as exc:
        raise DeployFailed(f"proxy API at {address} did not answer {method} {path}: {exc}") from None
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw) if raw else None
    except ValueError:
        return resp.status, raw.decode("utf-8", "replace")
