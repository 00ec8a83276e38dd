"""Secrets in a stream of lines: whole, multi-line, split across lines, behind the reporter's prefix."""

from shipline.server.masking import StreamMasker

PEM = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\nKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ\n-----END KEY-----"


def run(masker: StreamMasker, lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        out += masker.feed(line)
    return out + masker.flush()


def test_whole_secret_in_a_line() -> None:
    out = run(StreamMasker(["hunter2-secret"]), ["password is hunter2-secret, ok", "next"])
    assert out == ["password is ******, ok", "next"]


def test_multiline_secret_printed_by_a_step() -> None:
    lines = ["test unit | " + part for part in PEM.splitlines()]
    out = run(StreamMasker([PEM]), ["before", *lines, "after"])
    text = "\n".join(out)
    for part in PEM.splitlines():
        assert part not in text
    assert out[0] == "before" and out[-1] == "after"
    assert all(line == "test unit | ******" for line in out[1:-1])


def test_secret_split_across_lines_is_masked_in_both() -> None:
    secret = "Zq7wX9-it-secret-value"
    out = run(StreamMasker([secret]), ["build web | token=Zq7wX9-it-se", "build web | cret-value and more", "done"])
    text = "\n".join(out)
    assert "Zq7wX9" not in text and "cret-value" not in text
    assert out == ["build web | token=******", "build web | ****** and more", "done"]


def test_lines_are_held_only_while_they_may_start_a_secret() -> None:
    m = StreamMasker(["abcdef-secret"])
    assert m.feed("plain line") == ["plain line"]
    assert m.feed("ends with abc") == []  # could continue as the secret
    assert m.feed("xyz") == ["ends with abc", "xyz"]  # it did not


def test_quiet_flush_masks_a_long_held_prefix_and_the_rest_later() -> None:
    m = StreamMasker(["abcdef-secret"])
    assert m.feed("key abcdef") == []
    assert m.flush() == ["key ******"]  # output went quiet: shown, the 6-character prefix masked
    assert m.feed("-secret tail") == ["****** tail"]  # the rest is still recognised


def test_short_values_and_ordinary_text_are_left_alone() -> None:
    out = run(StreamMasker(["abc", "longer-secret"]), ["abc def", "long", "er words"])
    assert out == ["abc def", "long", "er words"]


def test_overlapping_and_repeated_occurrences() -> None:
    out = run(StreamMasker(["s3cr3t-value", "s3cr3t"]), ["s3cr3t-value s3cr3t s3cr3t-value"])
    assert out == ["****** ****** ******"]


def test_a_secret_folded_where_it_has_a_blank() -> None:
    """`fold -w 9` of a PEM line cuts "-----END TEST KEY-----" after the blank: the blank must stay in the match."""
    cert = "-----BEGIN TEST KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9\n-----END TEST KEY-----"
    folded = [line[i:i + 9] for line in cert.splitlines() for i in range(0, len(line), 9)]
    out = run(StreamMasker([cert]), ["test echo | " + part for part in folded] + ["done"])
    assert out == ["test echo | ******"] * len(folded) + ["done"]
