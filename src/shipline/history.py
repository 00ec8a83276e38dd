"""Release history in SQLite: every pipeline run, its commit, images, trigger, stage timings and result."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS releases (
    number      INTEGER PRIMARY KEY AUTOINCREMENT,
    app         TEXT NOT NULL,
    sha         TEXT NOT NULL,
    short_sha   TEXT NOT NULL,
    ref         TEXT NOT NULL,
    images      TEXT NOT NULL DEFAULT '{}',
    source      TEXT NOT NULL,
    actor       TEXT NOT NULL DEFAULT '',
    rollback_of INTEGER,
    status      TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    stages      TEXT NOT NULL DEFAULT '{}',
    hosts       TEXT NOT NULL DEFAULT '[]',
    started_at  TEXT NOT NULL,
    finished_at TEXT
);
"""

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"


@dataclass
class Release:
    number: int
    app: str
    sha: str
    short_sha: str
    ref: str
    source: str
    actor: str
    status: str
    started_at: str
    images: dict[str, str] = field(default_factory=dict)
    rollback_of: int | None = None
    reason: str = ""
    stages: dict[str, float] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    finished_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class History:
    """One SQLite file per project (`.shipline/history.db`); safe to open from several processes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(SCHEMA)

    def start(self, *, app: str, sha: str, short_sha: str, ref: str, source: str, actor: str,
              images: dict[str, str], hosts: list[str], rollback_of: int | None = None) -> int:
        cur = self._db.execute(
            "INSERT INTO releases (app, sha, short_sha, ref, images, source, actor, rollback_of, status, hosts, started_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (app, sha, short_sha, ref, json.dumps(images), source, actor, rollback_of, RUNNING, json.dumps(hosts), _now()),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def finish(self, number: int, status: str, stages: dict[str, float], reason: str = "") -> None:
        self._db.execute(
            "UPDATE releases SET status = ?, reason = ?, stages = ?, finished_at = ? WHERE number = ?",
            (status, reason, json.dumps({k: round(v, 3) for k, v in stages.items()}), _now(), number),
        )

    def get(self, number: int) -> Release | None:
        row = self._db.execute("SELECT * FROM releases WHERE number = ?", (number,)).fetchone()
        return _release(row) if row else None

    def recent(self, limit: int = 50) -> list[Release]:
        rows = self._db.execute("SELECT * FROM releases ORDER BY number DESC LIMIT ?", (limit,)).fetchall()
        return [_release(r) for r in rows]

    def succeeded(self, limit: int = 1000) -> list[Release]:
        """Successful releases, newest first: the first is what the hosts serve."""
        rows = self._db.execute(
            "SELECT * FROM releases WHERE status = ? ORDER BY number DESC LIMIT ?", (SUCCEEDED, limit)
        ).fetchall()
        return [_release(r) for r in rows]

    def current(self) -> Release | None:
        found = self.succeeded(1)
        return found[0] if found else None

    def close(self) -> None:
        self._db.close()


def _release(row: sqlite3.Row) -> Release:
    return Release(
        number=row["number"], app=row["app"], sha=row["sha"], short_sha=row["short_sha"], ref=row["ref"],
        source=row["source"], actor=row["actor"], status=row["status"], started_at=row["started_at"],
        images=json.loads(row["images"]), rollback_of=row["rollback_of"], reason=row["reason"],
        stages=json.loads(row["stages"]), hosts=json.loads(row["hosts"]), finished_at=row["finished_at"],
    )
