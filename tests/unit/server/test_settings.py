"""serve.yml: refuses to start without an operator token, names file, key and fix for every problem."""

from pathlib import Path

import pytest

from shipline.errors import ConfigError
from shipline.server.settings import load_settings

TOKEN = "op-token-0123456789abcdef"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "serve.yml"
    path.write_text(text)
    return path


def test_minimal_file_with_token_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "data_dir: /tmp/x\noperator_token: ${OP}\napps:\n  shop: {branch: main}\n")
    settings = load_settings(path, {"OP": TOKEN})
    assert settings.operator_token == TOKEN and settings.apps["shop"].config == "shipline.yml"
    assert settings.local_url() == "http://127.0.0.1:8700"


def test_no_token_no_start(tmp_path: Path) -> None:
    path = write(tmp_path, "data_dir: /tmp/x\napps:\n  shop: {}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path, {})
    assert f"{path}: operator_token: this key is required" in exc.value.message
    assert "openssl rand" in exc.value.message


def test_unset_variable_short_secrets_and_unknown_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "data_dir: /tmp/x\noperator_token: ${NOPE}\napps: {}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path, {})
    assert "operator_token: uses ${NOPE}" in exc.value.message
    path = write(tmp_path, "data_dir: /tmp/x\noperator_token: short\napps:\n  Shop!: {webhooks: {github: tiny}, brnach: x}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path, {})
    text = exc.value.message
    assert "operator_token: String should have at least 16 characters" in text and "short" not in text.split("operator_token")[1][:60]
    assert "apps.Shop!.webhooks.github: a webhook secret must have at least 16 characters" in text
    assert "apps.Shop!.brnach: unknown key" in text
    assert "tiny" not in text  # secrets are not echoed back


def test_missing_secrets_file(tmp_path: Path) -> None:
    path = write(tmp_path, f"data_dir: /tmp/x\noperator_token: {TOKEN}\napps:\n  shop: {{secrets_file: /nonexistent/s}}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path, {})
    assert "apps.shop.secrets_file: /nonexistent/s does not exist" in exc.value.message
