"""Host key pins: what a user pastes (keyscan output, known_hosts lines, fingerprints) and what is refused."""

from __future__ import annotations

import paramiko
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shipline.config import Host
from shipline.errors import HostKeyError
from shipline.executors.ssh import _PinnedKeyPolicy
from shipline.hostkeys import PublicKey, parse_pin, unpinned_algorithms


def ed25519() -> str:
    return Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


def ecdsa() -> str:
    key = paramiko.ECDSAKey.generate()
    return f"{key.get_name()} {key.get_base64()}"


KEY = ed25519()


@pytest.mark.parametrize("pasted", [
    KEY,
    f"{KEY} root@server",
    f"[203.0.113.10]:2222 {KEY}",
    f"[203.0.113.10]:2222 {KEY} a comment with words",
    f"server.example.com,203.0.113.10 {KEY}",
    f"|1|F1E1KeoE/eEWhi10WpGv4OdiO6Y=|3988QV0VE8wmZL7suNrYQLITLCg= {KEY}",
])
def test_keyscan_and_known_hosts_lines_pin_the_key(pasted: str) -> None:
    assert parse_pin(pasted) == KEY


@pytest.mark.parametrize(("pasted", "why"), [
    ("ssh-ed25519 AAAA", "cut short or damaged"),
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKcW1x4Z1Rk9E3q2n0b7oJm1fQ7b0v9", "cut short or damaged"),
    (f"ssh-ed25519 {KEY.split()[1]}AAAA", "cut short or damaged"),  # trailing bytes
    (f"ssh-rsa {KEY.split()[1]}", "cut short or damaged"),  # an Ed25519 key under another type
    ("ssh-ed25519 not-base64!", "cut short or damaged"),
    (f"@cert-authority *.example.com {KEY}", "`@cert-authority` line"),
    (f"@revoked * {KEY}", "`@revoked` line"),
    ("AAAAC3NzaC1lZDI1NTE5", "expected `TYPE BASE64`"),
    (f"deploy at host {KEY}", "expected `TYPE BASE64`"),
    ("ssh-ed25519", "expected `TYPE BASE64`"),
    ("SHA256:tooshort", "43 base64 characters"),
])
def test_malformed_pins_are_refused_with_the_reason(pasted: str, why: str) -> None:
    with pytest.raises(ValueError, match="not an SSH host key") as info:
        parse_pin(pasted)
    assert why in str(info.value)


def test_fingerprint_pin() -> None:
    fingerprint = PublicKey.parse(KEY).fingerprint
    assert parse_pin(fingerprint) == fingerprint and parse_pin(fingerprint + "=") == fingerprint


def test_several_pins_as_a_list_or_as_lines_for_a_rotation() -> None:
    new, fp = ed25519(), PublicKey.parse(ed25519()).fingerprint
    listed = Host(address="deploy@h", host_key=[KEY + " old", f"[h]:22 {new}", fp])
    assert listed.pins == [KEY, new, fp]
    lines = Host(address="deploy@h", host_key=f"# rotating, see ticket 12\n{KEY}\n\n{new}\n{KEY}\n")
    assert lines.pins == [KEY, new]  # comments, blank lines and repeats dropped
    assert Host(address="deploy@h", host_key="").pins == [] and Host(address="deploy@h").pins == []


def test_a_bad_pin_among_several_is_named() -> None:
    with pytest.raises(ValueError, match=r"cut short or damaged.*\(pin 2 of 2\)"):
        Host(address="deploy@h", host_key=[KEY, "ssh-ed25519 AAAA"])


def test_only_the_pinned_key_types_are_asked_for() -> None:
    disabled = unpinned_algorithms([KEY, ed25519()])
    assert "ssh-ed25519" not in disabled and {"ecdsa-sha2-nistp256", "rsa-sha2-512"} <= set(disabled)
    assert "ecdsa-sha2-nistp256" not in unpinned_algorithms([KEY, ecdsa()])
    assert unpinned_algorithms([KEY, PublicKey.parse(KEY).fingerprint]) == []  # a fingerprint names no type
    assert unpinned_algorithms([]) == []


def test_policy_accepts_any_pinned_key_and_refuses_others() -> None:
    old, new = paramiko.ECDSAKey.generate(), paramiko.ECDSAKey.generate()
    pins = [f"{old.get_name()} {old.get_base64()}", PublicKey(new.get_name(), new.get_base64()).fingerprint]
    policy = _PinnedKeyPolicy("deploy@h", pins, 0)
    policy.missing_host_key(paramiko.SSHClient(), "h", old)
    policy.missing_host_key(paramiko.SSHClient(), "h", new)
    other = paramiko.ECDSAKey.generate()
    with pytest.raises(HostKeyError, match="does not match the pinned one") as info:
        policy.missing_host_key(paramiko.SSHClient(), "h", other)
    assert PublicKey(other.get_name(), other.get_base64()).fingerprint in info.value.message
