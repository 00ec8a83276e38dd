"""Secrets: masked in every rendering, read from the environment or the secrets file."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from shipline.errors import ConfigError
from shipline.secrets import MASK, Masker, Secret, read_env_file, resolve_secrets


def test_secret_renderings_are_masked() -> None:
    secret = Secret("DB_PASSWORD", "hunter2-very-secret")
    old_styles = ("%s" % secret, "{}".format(secret))  # noqa: UP031, UP032 -- these renderings are under test
    for text in (str(secret), repr(secret), f"{secret}", f"{secret:>30}", *old_styles,
                 str([secret]), str({"pw": secret})):
        assert "hunter2" not in text
    assert str(secret) == MASK
    assert repr(secret) == f"Secret('DB_PASSWORD', {MASK!r})"
    assert secret.reveal() == "hunter2-very-secret"


def test_secret_in_log_record_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("password is %s", Secret("P", "hunter2-very-secret"))
    assert "hunter2" not in caplog.text
    assert MASK in caplog.text


def test_secret_equality_and_hash() -> None:
    assert Secret("A", "value1") == Secret("A", "value1")
    assert Secret("A", "value1") != Secret("A", "value2")
    assert Secret("A", "value1") != "value1"
    assert len({Secret("A", "value1"), Secret("A", "value1")}) == 1


def test_masker_replaces_every_occurrence() -> None:
    mask = Masker([Secret("A", "s3cret-token"), Secret("B", "pa55word")])
    assert mask("token=s3cret-token pw=pa55word again s3cret-token") == f"token={MASK} pw={MASK} again {MASK}"


def test_masker_masks_longest_first() -> None:
    mask = Masker([Secret("SHORT", "abcd"), Secret("LONG", "abcdefgh")])
    assert mask("x abcdefgh y abcd") == f"x {MASK} y {MASK}"


def test_masker_ignores_values_too_short_to_mask() -> None:
    mask = Masker([Secret("A", "ab")])
    assert mask("a tab b") == "a tab b"


def test_masker_add() -> None:
    mask = Masker()
    assert mask("hunter2x") == "hunter2x"
    mask.add(Secret("A", "hunter2x"))
    mask.add(Secret("A", "hunter2x"))
    mask.add(Secret("B", "xy"))
    assert mask("pw hunter2x xy") == f"pw {MASK} xy"


def test_read_env_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    path.write_text(
        "# comment\n"
        "\n"
        "PLAIN=value1\n"
        "export EXPORTED=value2\n"
        "DOUBLE=\"with spaces\"\n"
        "SINGLE='it''s'\n"
        "  SPACED = padded  \n"
        "EQUALS=a=b=c\n"
        "NOVALUE\n"
        "EMPTY=\n"
    )
    assert read_env_file(path) == {
        "PLAIN": "value1",
        "EXPORTED": "value2",
        "DOUBLE": "with spaces",
        "SINGLE": "it''s",
        "SPACED": "padded",
        "EQUALS": "a=b=c",
        "EMPTY": "",
    }


def test_resolve_prefers_environment_over_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    path.write_text("DB_PASSWORD=from-file\nAPI_TOKEN=token-from-file\n")
    found = resolve_secrets(["DB_PASSWORD", "API_TOKEN"], {"DB_PASSWORD": "from-env"}, path)
    assert found["DB_PASSWORD"].reveal() == "from-env"
    assert found["API_TOKEN"].reveal() == "token-from-file"
    assert found["API_TOKEN"].name == "API_TOKEN"


def test_resolve_empty_environment_falls_back_to_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    path.write_text("DB_PASSWORD=from-file\n")
    assert resolve_secrets(["DB_PASSWORD"], {"DB_PASSWORD": ""}, path)["DB_PASSWORD"].reveal() == "from-file"


def test_resolve_without_file(tmp_path: Path) -> None:
    found = resolve_secrets(["A"], {"A": "value-a"}, tmp_path / "absent")
    assert found == {"A": Secret("A", "value-a")}


def test_missing_secrets_are_all_named(tmp_path: Path) -> None:
    path = tmp_path / ".shipline" / "secrets"
    with pytest.raises(ConfigError) as info:
        resolve_secrets(["DB_PASSWORD", "PRESENT", "API_TOKEN"], {"PRESENT": "here-it-is"}, path)
    problems = info.value.problems
    assert len(problems) == 2
    assert "secret DB_PASSWORD has no value" in problems[0]
    assert "secret API_TOKEN has no value" in problems[1]
    for problem in problems:
        assert problem.startswith(f"{path}: ")
        assert "\n" not in problem
    assert "here-it-is" not in info.value.message


def test_too_short_secret_is_refused_without_showing_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="secret PIN is shorter than 4 characters") as info:
        resolve_secrets(["PIN"], {"PIN": "123"}, tmp_path / "secrets")
    assert "123" not in info.value.message


def test_env_file_multiline_double_quoted_value(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    path.write_text('A=one\nKEY="-----BEGIN KEY-----\nabc\n-----END KEY-----"\nB="two"\n')
    assert read_env_file(path) == {"A": "one", "KEY": "-----BEGIN KEY-----\nabc\n-----END KEY-----", "B": "two"}


def test_a_secrets_file_others_can_read_is_warned_about(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    path.write_text("DB_PASSWORD=from-file\n")
    warnings: list[str] = []
    path.chmod(0o644)
    assert resolve_secrets(["DB_PASSWORD"], {}, path, warnings.append)["DB_PASSWORD"].reveal() == "from-file"
    assert len(warnings) == 1 and "mode 0644" in warnings[0] and f"chmod 600 {path}" in warnings[0]
    path.chmod(0o600)
    resolve_secrets(["DB_PASSWORD"], {}, path, warnings.append)
    assert len(warnings) == 1
