"""The commit's public address: credentials a checkout embeds in its remote never reach labels or plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipline.gitrepo import public_url, source_url

from .projects import committed_project, git


@pytest.mark.parametrize(("remote", "shown"), [
    ("https://ci-bot:ghp_abc123@github.com/acme/shop.git", "https://github.com/acme/shop.git"),
    ("https://x-access-token:ghs_abc@github.com/acme/shop.git", "https://github.com/acme/shop.git"),
    ("https://ghp_abc123@github.com/acme/shop.git", "https://github.com/acme/shop.git"),
    ("https://user:p%40ss@git.example.test:8443/a/b.git", "https://git.example.test:8443/a/b.git"),
    ("ssh://git@github.com/acme/shop.git", "ssh://git@github.com/acme/shop.git"),
    ("ssh://git:secret@github.com/acme/shop.git", "ssh://github.com/acme/shop.git"),
    ("git@github.com:acme/shop.git", "git@github.com:acme/shop.git"),
    ("https://github.com/acme/shop.git", "https://github.com/acme/shop.git"),
    ("/srv/git/shop.git", "/srv/git/shop.git"),
])
def test_credentials_are_stripped(remote: str, shown: str) -> None:
    assert public_url(remote) == shown


def test_source_url_of_a_checkout_with_a_token_in_its_remote(tmp_path: Path) -> None:
    committed_project(tmp_path)
    git(tmp_path, "remote", "add", "origin", "https://ci-bot:ghp_s3cr3tvalue@github.com/acme/shop.git")
    assert source_url(tmp_path) == "https://github.com/acme/shop.git"
