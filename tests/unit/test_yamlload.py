"""YAML read as Docker Compose reads it (go-yaml v3), and hostile YAML refused with a clear reason."""

from __future__ import annotations

import pytest

from shipline import yamlload
from shipline.yamlload import MAX_EXPANDED_NODES, Override, Reset, YamlError, load


@pytest.mark.parametrize(("text", "expected"), [
    ("p: 22:22", "22:22"),  # YAML 1.1 (PyYAML) reads a base-60 integer, 1342
    ("p: no", "no"),  # YAML 1.1: False
    ("p: on", "on"),
    ("p: 2001-12-14", "2001-12-14"),  # YAML 1.1: a date
    ("p: 0440", 0o440),  # file modes, as Go's ParseInt(s, 0, 64)
    ("p: 0o17", 15),
    ("p: 0x1F", 31),
    ("p: 1_000", 1000),
    ("p: 1e3", 1000.0),
    ("p: true", True),
    ("p: ~", None),
    ("p:", None),
    ("p: '8080'", "8080"),
])
def test_scalars_follow_go_yaml(text: str, expected: object) -> None:
    assert load(text) == {"p": expected}


def test_merge_keys_own_keys_win_then_earlier_sources() -> None:
    text = "a: &a {x: 1, y: 1}\nb: &b {x: 2, z: 2}\nc:\n  <<: [*a, *b]\n  y: 3\n"
    assert load(text)["c"] == {"x": 1, "y": 3, "z": 2}


def test_compose_tags() -> None:
    data = load("services:\n  web:\n    ports: !reset []\n    environment: !override {A: 1}\n")
    assert data["services"]["web"] == {"ports": Reset([]), "environment": Override({"A": 1})}


@pytest.mark.parametrize(("data", "words"), [
    ("a: 1\na: 2\n", ("line 2", "defined twice")),
    (b"a: caf\xe9\n", ("not UTF-8", "0xe9", "line 1")),
    (b"\xff\xfe\x00\xd8", ("UTF-16",)),
    ("a: !custom x\n", ("unknown tag !custom",)),
    ("a: &x [*x]\n", ("refers to the node that contains it",)),
    ("a: [1\n", ("not valid YAML at line 2",)),
    ("a: 1\n---\nb: 2\n", ("several YAML documents",)),
    ("? [a]\n: 1\n", ("plain value",)),
    ("[" * 2000 + "]" * 2000, ("not valid YAML",)),
    ("a: *nope\n", ("not valid YAML", "undefined alias")),
])
def test_bad_input_is_one_clear_error(data: str | bytes, words: tuple[str, ...]) -> None:
    with pytest.raises(YamlError) as info:
        load(data)
    assert all(w in str(info.value) for w in words), str(info.value)
    assert "\n" not in str(info.value)


def test_utf8_bom_and_utf16_with_bom_are_text() -> None:
    assert load(b"\xef\xbb\xbfa: 1\n") == {"a": 1}
    assert load("a: 1\n".encode("utf-16")) == {"a": 1}


def bomb(levels: int) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_before_anything_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    text = bomb(9) + "services:\n  web:\n    image: x\n    depends_on: *l8\n"  # 10^9 values once expanded
    assert len(text) < 2000

    def never(*_args: object) -> None:
        raise AssertionError("the document was constructed")

    monkeypatch.setattr(yamlload._Loader, "construct_document", never)
    with pytest.raises(YamlError, match="alias bomb"):
        load(text)


def test_shared_anchors_within_the_limit_load() -> None:
    data = load(bomb(5))  # 10^5 values: anchors reused by many services stay well below the limit
    assert len(data["l4"]) == 10 and MAX_EXPANDED_NODES > 10**5
