"""The run queue's rules: one run at a time per app, newer commits supersede queued older ones, no duplicates.

Every rule is applied inside one SQLite transaction, so two deliveries arriving together cannot both win.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .store import ACTIVE, CANCELLED, QUEUED, RUNNING, SUPERSEDED, Run, Store, now

DEPLOY, ROLLBACK = "deploy", "rollback"


@dataclass(frozen=True)
class Queued:
    run: Run
    created: bool  # False: the same commit was already queued or running, and that run is returned


class Queue:
    def __init__(self, store: Store, wake: Callable[[str], None] = lambda app: None) -> None:
        self.store = store
        self._wake = wake  # tells the app's worker that something changed

    def deploy(self, app: str, sha: str, ref: str, source: str, actor: str, *,
               delivery: tuple[str, str, str] | None = None) -> Queued | None:
        """Queue a deploy of `sha`. With `delivery` (forge, id, body digest): None when it was seen before."""
        with self.store.transaction() as db:
            if delivery and self.store.delivery_seen(db, *delivery):
                return None
            row = db.execute("SELECT id FROM runs WHERE app = ? AND kind = ? AND sha = ? AND status IN (?, ?)"
                             " ORDER BY id DESC LIMIT 1", (app, DEPLOY, sha, *ACTIVE)).fetchone()
            created = row is None
            run_id = int(row["id"]) if row else self.store.insert_run(db, app=app, kind=DEPLOY, sha=sha, ref=ref,
                                                                        source=source, actor=actor)
            if created:
                db.execute("UPDATE runs SET status = ?, reason = ?, finished_at = ? WHERE app = ? AND kind = ?"
                           " AND status = ? AND id < ?", (SUPERSEDED, f"superseded by {sha[:7]}", now(), app, DEPLOY,
                                                          QUEUED, run_id))
            if delivery:
                self.store.record_delivery(db, *delivery, app=app, run_id=run_id)
        self._wake(app)
        run = self.store.run(run_id)
        assert run
        return Queued(run, created)

    def seen(self, forge: str, delivery: str, digest: str, app: str) -> bool:
        """Record an ignored delivery (a tag, another branch); True when it had been seen already."""
        with self.store.transaction() as db:
            if self.store.delivery_seen(db, forge, delivery, digest):
                return True
            self.store.record_delivery(db, forge, delivery, digest, app, None)
            return False

    def rollback(self, app: str, release: int, source: str, actor: str) -> Run:
        with self.store.transaction() as db:
            run_id = self.store.insert_run(db, app=app, kind=ROLLBACK, sha="", ref=f"release {release}", source=source,
                                           actor=actor, release=release)
        self._wake(app)
        run = self.store.run(run_id)
        assert run
        return run

    def cancel(self, run_id: int, who: str) -> Run | None:
        """A queued run is cancelled at once; a running one is flagged, and its runner stops it like Ctrl-C."""
        with self.store.transaction() as db:
            db.execute("UPDATE runs SET status = ?, reason = ?, finished_at = ? WHERE id = ? AND status = ?",
                       (CANCELLED, f"cancelled by {who} before it started", now(), run_id, QUEUED))
            db.execute("UPDATE runs SET cancel = 1, reason = ? WHERE id = ? AND status = ?",
                       (f"cancelled by {who}", run_id, RUNNING))
        run = self.store.run(run_id)
        if run:
            self._wake(run.app)
        return run

    def next(self, app: str) -> Run | None:
        """The oldest queued run of `app`, marked running; None when one is running already or none is queued."""
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM runs WHERE app = ? AND status = ?", (app, RUNNING)).fetchone():
                return None
            row = db.execute("SELECT id FROM runs WHERE app = ? AND status = ? ORDER BY id LIMIT 1", (app, QUEUED)).fetchone()
            if not row:
                return None
            db.execute("UPDATE runs SET status = ?, started_at = ? WHERE id = ?", (RUNNING, now(), row["id"]))
        return self.store.run(int(row["id"]))
