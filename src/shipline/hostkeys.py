"""Pinned SSH host keys: fingerprints, comparison, and the messages that tell a user how to pin."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class PublicKey:
    """A server's public host key as `type base64`, the form a known_hosts line uses."""

    key_type: str
    blob_b64: str

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        key_type, blob = text.split()[:2]
        return cls(key_type, blob)

    @property
    def line(self) -> str:
        return f"{self.key_type} {self.blob_b64}"

    @property
    def fingerprint(self) -> str:
        """OpenSSH's SHA256 fingerprint, as `ssh-keygen -lf` prints it."""
        digest = hashlib.sha256(base64.b64decode(self.blob_b64)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def matches(pinned: str, offered: PublicKey) -> bool:
    """A pin is either the whole public key or its SHA256 fingerprint."""
    if pinned.startswith("SHA256:"):
        return pinned.rstrip("=") == offered.fingerprint
    return PublicKey.parse(pinned) == offered


def unknown_key_message(address: str, offered: PublicKey, index: int) -> str:
    return (
        f"Refusing to deploy to {address}: its SSH host key is not pinned in shipline.yml. "
        f"The server offered {offered.key_type} {offered.fingerprint}. "
        f"Check that fingerprint on the server itself (`ssh-keygen -lf /etc/ssh/ssh_host_{_short(offered)}_key.pub`) "
        f"and, if it matches, pin it: set hosts[{index}].host_key to \"{offered.line}\" "
        f"(`shipline keyscan {address}` prints that line)."
    )


def changed_key_message(address: str, pinned: str, offered: PublicKey, index: int) -> str:
    expected = pinned if pinned.startswith("SHA256:") else PublicKey.parse(pinned).fingerprint
    return (
        f"Refusing to deploy to {address}: its SSH host key does not match the pinned one. "
        f"Pinned: {expected}; offered: {offered.key_type} {offered.fingerprint}. "
        f"Someone may be intercepting the connection, or the server was reinstalled. Verify the new key on the "
        f"server (`ssh-keygen -lf /etc/ssh/ssh_host_{_short(offered)}_key.pub`) before replacing hosts[{index}].host_key."
    )


def _short(key: PublicKey) -> str:
    return {"ssh-ed25519": "ed25519", "ssh-rsa": "rsa"}.get(key.key_type, "ecdsa")
