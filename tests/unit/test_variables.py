"""Compose's `${VAR}` grammar: substitution and the variables a string needs."""

from __future__ import annotations

import pytest

from shipline.variables import Reference, RequiredVariable, TemplateError, references, substitute

ENV = {"A": "a", "EMPTY": ""}


@pytest.mark.parametrize(("text", "expected"), [
    ("$A ${A}", "a a"),
    ("${UNSET}|$UNSET", "|"),
    ("${UNSET:-x} ${EMPTY:-x} ${A:-x}", "x x a"),
    ("${UNSET-x} ${EMPTY-x}", "x "),  # `-`: only when unset
    ("${A:+yes} ${EMPTY:+yes} ${UNSET+yes} ${EMPTY+yes}", "yes   yes"),
    ("${UNSET:-${A}-${B:-b}}", "a-b"),  # nested defaults
    ("$$A $$", "$A $"),
    ("cost: $5 and $ and $-", "cost: $5 and $ and $-"),  # not variables: left as written
    ("${A}${A}", "aa"),
])
def test_substitute(text: str, expected: str) -> None:
    assert substitute(text, ENV.get) == expected


@pytest.mark.parametrize(("text", "name", "message"), [
    ("${UNSET?must be set}", "UNSET", "must be set"),
    ("${EMPTY:?not empty please}", "EMPTY", "not empty please"),
    ("${UNSET:?}", "UNSET", ""),
])
def test_required(text: str, name: str, message: str) -> None:
    with pytest.raises(RequiredVariable) as info:
        substitute(text, ENV.get)
    assert (info.value.name, info.value.message) == (name, message)


def test_empty_passes_the_unset_only_check() -> None:
    assert substitute("[${EMPTY?x}]", ENV.get) == "[]"


def test_missing_replaces_required_failures() -> None:
    assert substitute("${UNSET:?x}-${A}", ENV.get, missing="?") == "?-a"


@pytest.mark.parametrize("text", ["${}", "${A", "${A B}", "${1A}", "${A:x}"])
def test_invalid_templates(text: str) -> None:
    with pytest.raises(TemplateError):
        substitute(text, ENV.get)


def test_braced_only_leaves_shell_variables() -> None:
    assert substitute("echo $HOME ${A}", ENV.get, braced_only=True) == "echo $HOME a"


def test_references() -> None:
    refs = list(references("${A:-${B}} $C ${D?say} ${E:+x} $$F"))
    assert refs == [Reference("A", ":-"), Reference("B", ""), Reference("C", ""), Reference("D", "?", "say"),
                    Reference("E", ":+")]
    assert [r.has_default for r in refs] == [True, False, False, False, True]
