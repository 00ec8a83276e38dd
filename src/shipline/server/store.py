"""The server's SQLite database: runs, their logs, webhook deliveries seen, login sessions, per-app hook tokens.

It records what the server did, not what is deployed: the hosts' release ledgers are the truth about releases.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    app         TEXT NOT NULL,
    kind        TEXT NOT NULL,            -- deploy | rollback
    sha         TEXT NOT NULL DEFAULT '', -- deploy: the commit; rollback: ''
    ref         TEXT NOT NULL DEFAULT '',
    release     INTEGER,                  -- rollback: the release rolled back to
    source      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    status      TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    stages      TEXT NOT NULL DEFAULT '{}',
    exit_code   INTEGER,
    pid         INTEGER,
    cancel      INTEGER NOT NULL DEFAULT 0,
    out_offset  INTEGER NOT NULL DEFAULT 0,   -- bytes of the run's raw output already in `log`
    queued_at   TEXT NOT NULL,
    started_at  TEXT,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS runs_app_status ON runs (app, status);
CREATE TABLE IF NOT EXISTS log (
    run  INTEGER NOT NULL,
    seq  INTEGER NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (run, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deliveries (
    forge       TEXT NOT NULL,
    delivery    TEXT NOT NULL,
    digest      TEXT NOT NULL UNIQUE,
    app         TEXT NOT NULL,
    run         INTEGER,
    received_at TEXT NOT NULL,
    PRIMARY KEY (forge, delivery)
);
CREATE TABLE IF NOT EXISTS sessions (
    id         TEXT PRIMARY KEY,
    csrf       TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS apps (
    name       TEXT PRIMARY KEY,
    hook_token TEXT NOT NULL
);
"""

QUEUED, RUNNING = "queued", "running"
SUCCEEDED, FAILED, CANCELLED, SUPERSEDED, INTERRUPTED, TIMED_OUT = (
    "succeeded", "failed", "cancelled", "superseded", "interrupted", "timed-out")
ACTIVE = (QUEUED, RUNNING)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class Run:
    id: int
    app: str
    kind: str
    sha: str
    ref: str
    source: str
    actor: str
    status: str
    queued_at: str
    release: int | None = None
    reason: str = ""
    stages: dict[str, float] = field(default_factory=dict)
    exit_code: int | None = None
    pid: int | None = None
    cancel: bool = False
    out_offset: int = 0
    started_at: str | None = None
    finished_at: str | None = None

    @property
    def short_sha(self) -> str:
        return self.sha[:7]

    @property
    def finished(self) -> bool:
        return self.status not in ACTIVE

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["short_sha"] = self.short_sha
        return data


def _run(row: sqlite3.Row) -> Run:
    d = dict(row)
    d["stages"] = json.loads(d["stages"])
    d["cancel"] = bool(d["cancel"])
    return Run(**d)


class Store:
    """One connection, serialised by a lock: the server is one process and its writes are small."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._db.execute(sql, args).fetchone()
            return row

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # runs
    def insert_run(self, db: sqlite3.Connection, *, app: str, kind: str, sha: str, ref: str, source: str, actor: str,
                   release: int | None = None) -> int:
        cur = db.execute("INSERT INTO runs (app, kind, sha, ref, release, source, actor, status, queued_at)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (app, kind, sha, ref, release, source, actor, QUEUED, now()))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def run(self, run_id: int) -> Run | None:
        row = self._one("SELECT * FROM runs WHERE id = ?", (run_id,))
        return _run(row) if row else None

    def runs(self, app: str | None = None, limit: int = 50, statuses: tuple[str, ...] = ()) -> list[Run]:
        where, args = [], []
        if app:
            where.append("app = ?")
            args.append(app)
        if statuses:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            args += statuses
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"
        return [_run(r) for r in self._all(sql, (*args, limit))]

    def update_run(self, run_id: int, **values: Any) -> None:
        if "stages" in values:
            values["stages"] = json.dumps(values["stages"])
        cols = ", ".join(f"{k} = ?" for k in values)
        with self._lock:
            self._db.execute(f"UPDATE runs SET {cols} WHERE id = ?", (*values.values(), run_id))

    def finish_run(self, run_id: int, status: str, reason: str = "", exit_code: int | None = None) -> None:
        """Only a run still active is finished: a cancel racing with the end keeps the first outcome."""
        with self._lock:
            self._db.execute("UPDATE runs SET status = ?, reason = ?, exit_code = ?, finished_at = ?, pid = NULL"
                             " WHERE id = ? AND status IN (?, ?)", (status, reason, exit_code, now(), run_id, *ACTIVE))

    # log
    def append_log(self, run_id: int, lines: list[str], out_offset: int | None = None) -> int:
        """Append lines (and how far the raw output has been read); returns the last line's sequence number."""
        with self._lock:
            if out_offset is not None:
                self._db.execute("UPDATE runs SET out_offset = ? WHERE id = ?", (out_offset, run_id))
            row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM log WHERE run = ?", (run_id,)).fetchone()
            start = int(row[0])
            self._db.executemany("INSERT INTO log (run, seq, line) VALUES (?, ?, ?)",
                                 [(run_id, start + i + 1, line) for i, line in enumerate(lines)])
            return start + len(lines)

    def log(self, run_id: int, after: int = 0) -> list[tuple[int, str]]:
        return [(r["seq"], r["line"]) for r in self._all("SELECT seq, line FROM log WHERE run = ? AND seq > ? ORDER BY seq",
                                                         (run_id, after))]

    # deliveries
    def delivery_seen(self, db: sqlite3.Connection, forge: str, delivery: str, digest: str) -> bool:
        return db.execute("SELECT 1 FROM deliveries WHERE (forge = ? AND delivery = ?) OR digest = ?",
                          (forge, delivery, digest)).fetchone() is not None

    def record_delivery(self, db: sqlite3.Connection, forge: str, delivery: str, digest: str, app: str,
                        run_id: int | None) -> None:
        db.execute("INSERT INTO deliveries (forge, delivery, digest, app, run, received_at) VALUES (?, ?, ?, ?, ?, ?)",
                   (forge, delivery, digest, app, run_id, now()))

    # sessions
    def create_session(self, expires_at: str) -> tuple[str, str]:
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE expires_at < ?", (now(),))
            self._db.execute("INSERT INTO sessions (id, csrf, expires_at) VALUES (?, ?, ?)", (sid, csrf, expires_at))
        return sid, csrf

    def session_csrf(self, sid: str) -> str | None:
        row = self._one("SELECT csrf FROM sessions WHERE id = ? AND expires_at > ?", (sid, now()))
        return str(row["csrf"]) if row else None

    def delete_session(self, sid: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE id = ?", (sid,))

    # apps
    def hook_token(self, app: str) -> str:
        """The token a bare repository's hook presents; made once per app, kept across restarts."""
        with self.transaction() as db:
            row = db.execute("SELECT hook_token FROM apps WHERE name = ?", (app,)).fetchone()
            if row:
                return str(row["hook_token"])
            token = secrets.token_urlsafe(32)
            db.execute("INSERT INTO apps (name, hook_token) VALUES (?, ?)", (app, token))
            return token

    def close(self) -> None:
        with self._lock:
            self._db.close()
