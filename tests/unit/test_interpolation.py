"""`${VAR}` interpolation in shipline.yml values, with Compose's rules."""

from __future__ import annotations

import pytest

from shipline.interpolation import MissingVariable, interpolate


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${HOST}", {"HOST": "203.0.113.10"}, "203.0.113.10"),
        ("deploy@${HOST}:${PORT}", {"HOST": "example.com", "PORT": "2222"}, "deploy@example.com:2222"),
        ("${PORT:-22}", {}, "22"),
        ("${PORT:-22}", {"PORT": ""}, "22"),  # empty counts as unset, as with Compose's `:-`
        ("${PORT:-22}", {"PORT": "2200"}, "2200"),
        ("${EMPTY_DEFAULT:-}", {}, ""),
        ("price: $$5", {}, "price: $5"),
        ("$$HOME stays", {"HOME": "/root"}, "$HOME stays"),
        ("$HOST is not braced", {"HOST": "x"}, "$HOST is not braced"),
        ("{sha} is a build placeholder", {}, "{sha} is a build placeholder"),
        ("no variables", {}, "no variables"),
    ],
)
def test_strings(text: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(text, env) == expected


def test_walks_mappings_and_lists_and_leaves_other_values() -> None:
    data = {"hosts": [{"address": "${A}", "port": 22}], "keep": True, "none": None, "n": 1.5}
    assert interpolate(data, {"A": "x@y"}) == {"hosts": [{"address": "x@y", "port": 22}], "keep": True, "none": None, "n": 1.5}


def test_keys_are_not_interpolated() -> None:
    assert interpolate({"${A}": "v"}, {"A": "x"}) == {"${A}": "v"}


def test_the_result_is_not_interpolated_again() -> None:
    assert interpolate("${A}", {"A": "${B}", "B": "no"}) == "${B}"


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"hosts": [{"host_key": "${HOST_KEY}"}]}, "hosts[0].host_key"),
        ({"build": {"backend": {"args": {"V": "v-${VERSION}"}}}}, "build.backend.args.V"),
        ({"app": "${APP}"}, "app"),
        ({"secrets": ["ok", "${NAME}"]}, "secrets[1]"),
    ],
)
def test_missing_variable_names_the_key_path(data: object, path: str) -> None:
    with pytest.raises(MissingVariable) as info:
        interpolate(data, {})
    assert info.value.path == path


def test_set_but_empty_without_default_is_missing() -> None:
    with pytest.raises(MissingVariable) as info:
        interpolate({"app": "${APP}"}, {"APP": ""})
    assert info.value.name == "APP"
