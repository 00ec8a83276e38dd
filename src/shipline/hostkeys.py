"""Pinned SSH host keys: fingerprints, comparison, and the messages that tell a user how to pin."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

import paramiko

KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")
# The host key algorithms a server may use for each key type (an RSA key signs with SHA-2 today).
ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}
FINGERPRINT_RE = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}=?$")


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


def parse_pin(text: str) -> str:
    """One pin, as `type base64` or `SHA256:...`, from what a user pastes; ValueError says what is wrong.

    Takes `shipline keyscan` output, a `.pub` file's line and `known_hosts` lines (`[host]:port type key comment`,
    hashed `|1|...` names, `host1,host2`): the host names are not part of the pin and are left out.
    """
    words = text.split()
    if len(words) == 1 and words[0].startswith("SHA256:"):
        if not FINGERPRINT_RE.match(words[0]):
            raise ValueError("not an SSH host key: a fingerprint is `SHA256:` and 43 base64 characters")
        return words[0].rstrip("=")
    if words and words[0] in ("@cert-authority", "@revoked"):
        raise ValueError(f"not an SSH host key: a `{words[0]}` line of known_hosts does not name the server's key")
    at = next((i for i, w in enumerate(words) if w in KEY_TYPES), None)
    if at is None or at > 1 or at + 1 >= len(words):
        raise ValueError(f"not an SSH host key: expected `TYPE BASE64` with TYPE one of {', '.join(KEY_TYPES)}, "
                         "optionally after a known_hosts host name and before a comment")
    key_type, b64 = words[at], words[at + 1]
    try:
        blob = base64.b64decode(b64, validate=True)
        key = paramiko.PKey.from_type_string(key_type, blob)
        if key.asbytes() != blob:
            raise ValueError("trailing data")
    except (binascii.Error, ValueError, paramiko.SSHException):
        raise ValueError(f"not an SSH host key: the {key_type} key data ({b64[:20]}...) is cut short or damaged; "
                         "copy the whole line again") from None
    return f"{key_type} {b64}"


def unpinned_algorithms(pins: list[str]) -> list[str]:
    """Host key algorithms to refuse: those of key types no pin names (none when a fingerprint leaves it open).

    Asking only for the pinned types makes a server that holds several keys offer a pinned one.
    """
    if not pins or any(p.startswith("SHA256:") for p in pins):
        return []
    types = {PublicKey.parse(p).key_type for p in pins}
    return [a for t in KEY_TYPES if t not in types for a in ALGORITHMS.get(t, (t,))]


def matches(pinned: str, offered: PublicKey) -> bool:
    """A pin is either the whole public key or its SHA256 fingerprint."""
    if pinned.startswith("SHA256:"):
        return pinned.rstrip("=") == offered.fingerprint
    return PublicKey.parse(pinned) == offered


def pin_fingerprint(pin: str) -> str:
    return pin if pin.startswith("SHA256:") else PublicKey.parse(pin).fingerprint


def unknown_key_message(address: str, offered: PublicKey, index: int) -> str:
    return (
        f"Refusing to deploy to {address}: its SSH host key is not pinned in shipline.yml. "
        f"The server offered {offered.key_type} {offered.fingerprint}. "
        f"Check that fingerprint on the server itself (`ssh-keygen -lf /etc/ssh/ssh_host_{_short(offered)}_key.pub`) "
        f"and, if it matches, pin it: set hosts[{index}].host_key to \"{offered.line}\" "
        f"(`shipline keyscan {address}` prints that line)."
    )


def changed_key_message(address: str, pins: list[str], offered: PublicKey, index: int) -> str:
    expected = " or ".join(pin_fingerprint(p) for p in pins)
    return (
        f"Refusing to deploy to {address}: its SSH host key does not match the pinned one. "
        f"Pinned: {expected}; offered: {offered.key_type} {offered.fingerprint}. "
        f"Someone may be intercepting the connection, or the server was reinstalled. Verify the new key on the "
        f"server (`ssh-keygen -lf /etc/ssh/ssh_host_{_short(offered)}_key.pub`) before replacing hosts[{index}].host_key."
    )


def _short(key: PublicKey) -> str:
    return {"ssh-ed25519": "ed25519", "ssh-rsa": "rsa"}.get(key.key_type, "ecdsa")
