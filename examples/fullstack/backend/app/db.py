"""Data access. One short-lived connection per operation: simple and safe with a threaded server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pg8000.native

from .config import Settings

CREATE_ITEMS = """
CREATE TABLE IF NOT EXISTS items (
    id         SERIAL PRIMARY KEY,
    text       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


class Database:
    def __init__(self, settings: Settings, timeout: float = 5.0) -> None:
        self._settings = settings
        self._timeout = timeout

    @contextmanager
    def connect(self) -> Iterator[pg8000.native.Connection]:
        s = self._settings
        conn = pg8000.native.Connection(
            s.database_user,
            host=s.database_host,
            port=s.database_port,
            database=s.database_name,
            password=s.database_password,
            timeout=self._timeout,
        )
        try:
            yield conn
        finally:
            conn.close()

    def ping(self) -> None:
        with self.connect() as conn:
            conn.run("SELECT 1")

    def list_items(self) -> list[dict]:
        with self.connect() as conn:
            rows = conn.run("SELECT id, text, created_at FROM items ORDER BY id")
        return [_item(row) for row in rows]

    def add_item(self, text: str) -> dict:
        with self.connect() as conn:
            rows = conn.run("INSERT INTO items (text) VALUES (:text) RETURNING id, text, created_at", text=text)
        return _item(rows[0])

    def migrate(self, wait_seconds: float = 60.0) -> None:
        """Create the schema; waits for the database to accept connections first."""
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                with self.connect() as conn:
                    conn.run(CREATE_ITEMS)
                return
            except (OSError, pg8000.native.InterfaceError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)


def _item(row: list) -> dict:
    item_id, text, created_at = row
    return {"id": item_id, "text": text, "created_at": created_at.isoformat()}
