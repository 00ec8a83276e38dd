from shipline import ledger
from shipline.ledger import FAILED, INTERRUPTED, RUNNING, SUCCEEDED, Record


def rec(number: int, status: str = SUCCEEDED, sha: str = "a", **kw: object) -> Record:
    base: dict[str, object] = dict(number=number, app="shop", sha=sha * 40, short_sha=sha * 7, ref="main", source="cli",
                                   actor="ann", status=status, started_at="2026-11-26T12:00:00+00:00",
                                   images={"backend": f"r/shop/backend:{sha * 7}"})
    return Record(**(base | kw))  # type: ignore[arg-type]


def test_a_record_survives_encoding_whole() -> None:
    r = rec(3, digests={"backend": "sha256:" + "f" * 64}, files={".env": "sha256:" + "e" * 64}, rollback_of=1,
            stages={"build": 1.5}, hosts=["deploy@h1"], reason="line one\nline [two]")
    line = ledger.encode(r)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert ledger.decode(line) == [r]


def test_the_latest_line_of_a_release_wins_and_order_is_by_number() -> None:
    raw = ledger.encode(rec(2, RUNNING)) + ledger.encode(rec(1)) + ledger.encode(rec(2, FAILED, reason="boom"))
    assert [(r.number, r.status, r.reason) for r in ledger.decode(raw)] == [(1, SUCCEEDED, ""), (2, FAILED, "boom")]


def test_a_torn_last_line_and_foreign_lines_are_skipped() -> None:
    good = ledger.encode(rec(1))
    torn = ledger.encode(rec(2, RUNNING))[:40]
    raw = b"not json\n" + b'{"v": 99, "number": 7}\n' + b"[1, 2]\n" + good + torn
    assert [r.number for r in ledger.decode(raw)] == [1]
    assert ledger.decode(None) == [] and ledger.decode(b"") == []


def test_unknown_fields_from_a_newer_shipline_are_ignored() -> None:
    line = ledger.encode(rec(1)).replace(b'"v": 1', b'"v": 1, "future": true')
    assert ledger.decode(line)[0].number == 1


def test_next_number_is_above_every_hosts_highest() -> None:
    assert ledger.next_number([]) == 1
    assert ledger.next_number([[rec(1), rec(4)], [rec(6, FAILED)], []]) == 7


def test_live_kept_and_unfinished() -> None:
    history = [rec(1), rec(2, FAILED), rec(3, sha="b"), rec(4, RUNNING), rec(5, INTERRUPTED), rec(6, sha="c")]
    live = ledger.live(history)
    assert live is not None and live.number == 6
    assert [r.number for r in ledger.kept(history, 2)] == [6, 3]
    assert [r.number for r in ledger.unfinished(history)] == [4]
    assert ledger.live([rec(1, FAILED)]) is None


def test_finished_keeps_identity_and_rounds_stages() -> None:
    done = rec(4, RUNNING).finished(SUCCEEDED, {"deploy": 1.23456}, at="2026-11-26T12:05:00+00:00")
    assert (done.number, done.status, done.stages, done.finished_at) == (4, SUCCEEDED, {"deploy": 1.235}, "2026-11-26T12:05:00+00:00")


def test_merge_is_newest_first_and_says_when_hosts_disagree() -> None:
    merged = ledger.merge({"h1": [rec(1), rec(2)], "h2": [rec(1), rec(2, RUNNING)]})
    assert [m.record.number for m in merged] == [2, 1]
    two = merged[0]
    assert two.status == "mixed" and two.record.status == SUCCEEDED  # the finished view describes it
    assert two.as_dict()["host_status"] == {"h1": SUCCEEDED, "h2": RUNNING}
    assert merged[1].status == SUCCEEDED and "host_status" not in merged[1].as_dict()
