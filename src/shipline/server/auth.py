"""Who may do what: the operator (a login session or the API token), a bare repository's hook, nobody else.

Sessions live in the database (logging out ends them); every state-changing form carries the session's CSRF
token and the cookie is SameSite=Strict. Repeated failures from one address are rate-limited.
"""

from __future__ import annotations

import hmac
import time
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta

from starlette.requests import Request

from .store import Store

COOKIE = "shipline_session"
SESSION_HOURS = 12


class Limiter:
    """At most `limit` failures per address within `window` seconds; then refused until the window passes."""

    def __init__(self, limit: int = 20, window: float = 60) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, addr: str) -> deque[float]:
        q = self._failures[addr]
        cutoff = time.monotonic() - self.window
        while q and q[0] < cutoff:
            q.popleft()
        return q

    def retry_after(self, addr: str) -> float | None:
        q = self._recent(addr)
        if len(q) < self.limit:
            if not q:
                self._failures.pop(addr, None)
            return None
        return max(1.0, q[0] + self.window - time.monotonic())

    def fail(self, addr: str) -> None:
        self._recent(addr).append(time.monotonic())


def address(request: Request) -> str:
    return request.client.host if request.client else "?"


def same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


class Auth:
    def __init__(self, store: Store, operator_token: str, secure_cookies: bool) -> None:
        self.store = store
        self._token = operator_token
        self.secure = secure_cookies
        self.limiter = Limiter()

    def check_token(self, given: str) -> bool:
        return same(given, self._token)

    def login(self) -> tuple[str, str]:
        expires = datetime.now(UTC) + timedelta(hours=SESSION_HOURS)
        return self.store.create_session(expires.isoformat(timespec="milliseconds"))

    def session(self, request: Request) -> tuple[str, str] | None:
        """(session id, its CSRF token) of a logged-in browser."""
        sid = request.cookies.get(COOKIE)
        if not sid:
            return None
        csrf = self.store.session_csrf(sid)
        return (sid, csrf) if csrf else None

    def operator(self, request: Request) -> str | None:
        """How the operator is authenticated ("token" or "session"), or None."""
        token = bearer(request)
        if token is not None:
            return "token" if self.check_token(token) else None
        return "session" if self.session(request) else None

    def csrf_ok(self, request: Request, given: str | None) -> bool:
        """State changes by a browser session must carry its CSRF token; API calls use the bearer token instead."""
        if bearer(request) is not None:
            return self.operator(request) == "token"
        found = self.session(request)
        return bool(found and given and same(given, found[1]))
