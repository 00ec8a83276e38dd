"""The release ledger each host keeps: the truth about what was deployed there, whoever deployed it.

One JSON object per line in `<app dir>/ledger.jsonl`, appended under the deploy lock; a later line for the
same release number replaces the earlier one (a release is written when it starts and again when it ends).
An append is one small write, so a deploy killed mid-write leaves at most one torn last line, which reading
skips. Any checkout, CI runner or server reads the same history from the hosts: nothing is kept locally.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

FORMAT = 1
RUNNING, SUCCEEDED, FAILED, INTERRUPTED = "running", "succeeded", "failed", "interrupted"
FINAL = (SUCCEEDED, FAILED, INTERRUPTED)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Record:
    """One release as a host knows it."""

    number: int
    app: str
    sha: str
    short_sha: str
    ref: str
    source: str
    actor: str
    status: str
    started_at: str
    finished_at: str | None = None
    reason: str = ""
    stages: dict[str, float] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)  # service -> ref deployed
    digests: dict[str, str] = field(default_factory=dict)  # service -> repo digest the host pulled
    files: dict[str, str] = field(default_factory=dict)  # uploaded file -> sha256 of its content
    services: dict[str, dict[str, str]] = field(default_factory=dict)  # service -> changes.ServiceState (what runs)
    rollback_of: int | None = None
    hosts: list[str] = field(default_factory=list)  # every host the release went to

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def finished(self, status: str, stages: Mapping[str, float], reason: str = "", at: str | None = None) -> Record:
        return replace(self, status=status, reason=reason, stages={k: round(v, 3) for k, v in stages.items()},
                       finished_at=at or now())


_FIELDS = {f.name for f in fields(Record)}


def encode(record: Record) -> bytes:
    """One ledger line (no newline inside: JSON escapes every control character)."""
    return (json.dumps({"v": FORMAT, **record.as_dict()}, sort_keys=True, ensure_ascii=False) + "\n").encode()


def decode(raw: bytes | None) -> list[Record]:
    """Every release in a ledger, oldest first, each in its latest state. Torn or foreign lines are skipped."""
    latest: dict[int, Record] = {}
    for line in (raw or b"").decode("utf-8", "replace").splitlines():
        try:
            data = json.loads(line)
            if not isinstance(data, dict) or data.get("v") != FORMAT:
                continue
            record = Record(**{k: v for k, v in data.items() if k in _FIELDS})
        except (ValueError, TypeError):
            continue
        if isinstance(record.number, int):
            latest[record.number] = record
    return [latest[n] for n in sorted(latest)]


def next_number(ledgers: Iterable[Sequence[Record]]) -> int:
    """One more than the highest number any host has seen: allocated under every host's lock, so unique."""
    return 1 + max((r.number for ledger in ledgers for r in ledger), default=0)


def live(ledger: Sequence[Record]) -> Record | None:
    """The release a host serves: its newest successful one."""
    return next((r for r in reversed(ledger) if r.status == SUCCEEDED), None)


def kept(ledger: Sequence[Record], keep: int) -> list[Record]:
    """The newest `keep` successful releases, newest first: their files and images stay for rollbacks."""
    return [r for r in reversed(ledger) if r.status == SUCCEEDED][:keep]


def unfinished(ledger: Sequence[Record]) -> list[Record]:
    """Releases whose deploy never wrote an end: it was killed or lost its connection."""
    return [r for r in ledger if r.status == RUNNING]


@dataclass(frozen=True)
class Merged:
    """A release as the fleet knows it: the records of every host that has it."""

    record: Record
    by_host: dict[str, Record]

    @property
    def status(self) -> str:
        statuses = {r.status for r in self.by_host.values()}
        return statuses.pop() if len(statuses) == 1 else "mixed"

    def as_dict(self) -> dict[str, Any]:
        out = self.record.as_dict()
        out["status"] = self.status
        out["hosts"] = sorted(set(self.record.hosts) | set(self.by_host))
        if self.status == "mixed":
            out["host_status"] = {h: r.status for h, r in sorted(self.by_host.items())}
        return out


def merge(ledgers: Mapping[str, Sequence[Record]]) -> list[Merged]:
    """All hosts' ledgers as one history, newest first."""
    by_number: dict[int, dict[str, Record]] = {}
    for host, ledger in ledgers.items():
        for r in ledger:
            by_number.setdefault(r.number, {})[host] = r
    merged = []
    for number in sorted(by_number, reverse=True):
        records = by_number[number]
        # The most finished view describes it best (a host cut off mid-deploy still says "running").
        best = max(records.values(), key=lambda r: (r.status in FINAL, r.finished_at or ""))
        merged.append(Merged(best, records))
    return merged
