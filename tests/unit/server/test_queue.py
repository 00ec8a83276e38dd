"""The queue's rules on a real SQLite file: supersede, no duplicates, replays, cancel, one run at a time."""

from pathlib import Path

import pytest

from shipline.server.queue import Queue
from shipline.server.store import CANCELLED, QUEUED, RUNNING, SUPERSEDED, Store

A, B, C = "a" * 40, "b" * 40, "c" * 40


@pytest.fixture
def queue(tmp_path: Path) -> Queue:
    return Queue(Store(tmp_path / "serve.db"))


def test_newer_commit_supersedes_queued_older_ones(queue: Queue) -> None:
    first = queue.deploy("shop", A, "refs/heads/main", "git-push", "ann")
    second = queue.deploy("shop", B, "refs/heads/main", "git-push", "ann")
    assert first and second and first.created and second.created
    old = queue.store.run(first.run.id)
    assert old and old.status == SUPERSEDED and old.reason == f"superseded by {B[:7]}"
    assert queue.next("shop") == queue.store.run(second.run.id)


def test_running_run_is_not_superseded_and_one_runs_at_a_time(queue: Queue) -> None:
    queue.deploy("shop", A, "refs/heads/main", "git-push", "ann")
    running = queue.next("shop")
    assert running and running.status == RUNNING
    queue.deploy("shop", B, "refs/heads/main", "git-push", "ann")
    assert queue.next("shop") is None  # A still runs
    again = queue.store.run(running.id)
    assert again and again.status == RUNNING
    other_app = queue.deploy("blog", C, "refs/heads/main", "git-push", "ann")
    assert other_app and queue.next("blog") is not None  # apps do not wait for each other


def test_same_commit_queued_or_running_is_not_queued_twice(queue: Queue) -> None:
    first = queue.deploy("shop", A, "refs/heads/main", "webhook:github", "ann")
    again = queue.deploy("shop", A, "refs/heads/main", "git-push", "bob")
    assert first and again and not again.created and again.run.id == first.run.id
    queue.next("shop")
    while_running = queue.deploy("shop", A, "refs/heads/main", "git-push", "bob")
    assert while_running and not while_running.created
    assert len(queue.store.runs("shop")) == 1


def test_a_delivery_seen_before_queues_nothing(queue: Queue) -> None:
    assert queue.deploy("shop", A, "refs/heads/main", "webhook:github", "ann", delivery=("github", "d1", "x" * 64))
    assert queue.deploy("shop", B, "refs/heads/main", "webhook:github", "ann", delivery=("github", "d1", "y" * 64)) is None
    # The same signed body under a new delivery id is a replay too.
    assert queue.deploy("shop", B, "refs/heads/main", "webhook:github", "ann", delivery=("github", "d2", "x" * 64)) is None
    assert [r.sha for r in queue.store.runs("shop")] == [A]
    assert queue.seen("github", "d3", "z" * 64, "shop") is False
    assert queue.seen("github", "d3", "w" * 64, "shop") is True


def test_cancel_queued_is_immediate_running_is_flagged(queue: Queue) -> None:
    queued = queue.deploy("shop", A, "refs/heads/main", "git-push", "ann")
    assert queued
    queue.next("shop")
    waiting = queue.deploy("shop", B, "refs/heads/main", "git-push", "ann")
    assert waiting
    cancelled = queue.cancel(waiting.run.id, "operator")
    assert cancelled and cancelled.status == CANCELLED
    flagged = queue.cancel(queued.run.id, "operator")
    assert flagged and flagged.status == RUNNING and flagged.cancel and flagged.reason == "cancelled by operator"


def test_queue_survives_a_restart(tmp_path: Path) -> None:
    q = Queue(Store(tmp_path / "serve.db"))
    q.deploy("shop", A, "refs/heads/main", "git-push", "ann")
    q.store.close()
    again = Queue(Store(tmp_path / "serve.db"))
    run = again.store.runs("shop")[0]
    assert run.status == QUEUED and run.sha == A
