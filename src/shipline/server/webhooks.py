"""Webhook deliveries from GitHub, Gitea/Forgejo and GitLab, in two pure steps (as Woodpecker does).

`verify` checks authenticity over the exact bytes received (an HMAC over re-serialised JSON would not match what
the forge signed), comparing in constant time. `parse_push` then reads the payload. `decide` says whether a push
deploys. Tested against recorded real payloads (tests/data/webhooks).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

FORGES = ("github", "gitea", "gitlab")
ZERO_SHA = "0" * 40
SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


class Rejected(Exception):
    """A delivery refused with an HTTP status; nothing is queued."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Push:
    """What a push event says: which ref moved to which commit, and who pushed."""

    ref: str
    sha: str | None  # None when the ref was deleted
    actor: str
    repository: str

    @property
    def deleted(self) -> bool:
        return self.sha is None

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None


def _mac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.strip().lower().encode(), expected.encode())


def verify(forge: str, headers: Mapping[str, str], body: bytes, secret: str) -> None:
    """Raise Rejected(401) unless the delivery is signed (GitHub, Gitea) or carries the token (GitLab) for `secret`.

    `headers` has lower-case names (Starlette's are case-insensitive already).
    """
    if forge == "github":
        sig = headers.get("x-hub-signature-256")
        if not sig:
            raise Rejected(401, "unsigned delivery: X-Hub-Signature-256 is missing (set the webhook's secret)")
        if not sig.startswith("sha256=") or not _same(sig.removeprefix("sha256="), _mac(secret, body)):
            raise Rejected(401, "bad signature: X-Hub-Signature-256 does not match the body")
    elif forge == "gitea":
        sig = headers.get("x-gitea-signature") or headers.get("x-forgejo-signature")
        if not sig:
            raise Rejected(401, "unsigned delivery: X-Gitea-Signature is missing (set the webhook's secret)")
        if not _same(sig, _mac(secret, body)):
            raise Rejected(401, "bad signature: X-Gitea-Signature does not match the body")
    elif forge == "gitlab":
        token = headers.get("x-gitlab-token")
        if not token:
            raise Rejected(401, "unsigned delivery: X-Gitlab-Token is missing (set the webhook's secret token)")
        if not hmac.compare_digest(token.encode(), secret.encode()):
            raise Rejected(401, "bad token: X-Gitlab-Token is not this webhook's secret token")
    else:
        raise Rejected(404, f"unknown forge {forge!r}; use one of {', '.join(FORGES)}")


def event(forge: str, headers: Mapping[str, str]) -> str:
    names = {"github": ("x-github-event",), "gitea": ("x-gitea-event", "x-forgejo-event"), "gitlab": ("x-gitlab-event",)}
    return next((headers[n] for n in names[forge] if headers.get(n)), "")


def delivery_id(forge: str, headers: Mapping[str, str]) -> str | None:
    """The forge's id of this delivery; redeliveries keep it (GitLab: Idempotency-Key across retries)."""
    names = {"github": ("x-github-delivery",), "gitea": ("x-gitea-delivery", "x-forgejo-delivery"),
             "gitlab": ("idempotency-key", "x-gitlab-event-uuid")}
    return next((headers[n] for n in names[forge] if headers.get(n)), None)


def is_push(forge: str, event_name: str) -> bool:
    return event_name in {"github": ("push",), "gitea": ("push",), "gitlab": ("Push Hook", "Tag Push Hook")}[forge]


def _json(body: bytes) -> dict[str, Any]:
    if body.startswith(b"payload="):  # GitHub's form-encoded content type; the signature covers these bytes
        values = parse_qs(body.decode("utf-8", "replace")).get("payload")
        body = values[0].encode() if values else b""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Rejected(400, "malformed payload: the body is not JSON") from None
    if not isinstance(data, dict):
        raise Rejected(400, "malformed payload: the body is not a JSON object")
    return data


def _str(data: Mapping[str, Any], *path: str) -> str:
    value: Any = data
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) else ""


def parse_push(forge: str, body: bytes) -> Push:
    """The push in a verified body; Rejected(400) when it lacks what a push event must have."""
    data = _json(body)
    ref = data.get("ref")
    if not isinstance(ref, str) or not ref.startswith("refs/"):
        raise Rejected(400, "malformed push: `ref` is missing or not a full ref name")
    after = data.get("after")
    # GitLab's `after` is the tag object for annotated tags; `checkout_sha` is the commit (null on deletion).
    commit = data.get("checkout_sha") if forge == "gitlab" else after
    if commit is None or after == ZERO_SHA or data.get("deleted") is True:
        sha = None
    elif isinstance(commit, str) and SHA_RE.match(commit):
        sha = commit
    else:
        raise Rejected(400, "malformed push: the pushed commit is not a commit id")
    if forge == "github":
        actor = _str(data, "sender", "login") or _str(data, "pusher", "name")
        repo = _str(data, "repository", "full_name")
    elif forge == "gitea":
        actor = _str(data, "pusher", "login") or _str(data, "pusher", "username") or _str(data, "sender", "login")
        repo = _str(data, "repository", "full_name")
    else:
        actor = _str(data, "user_username") or _str(data, "user_name")
        repo = _str(data, "project", "path_with_namespace")
    return Push(ref=ref, sha=sha, actor=actor or forge, repository=repo)


def decide(push: Push, branch: str) -> str | None:
    """None when the push deploys; otherwise why it is acknowledged and ignored."""
    if push.deleted:
        return f"{push.ref} was deleted; nothing to deploy"
    if push.ref.startswith("refs/tags/"):
        return f"tag {push.ref.removeprefix('refs/tags/')} is not deployed; only pushes to {branch} are"
    if push.branch != branch:
        return f"{push.ref} is not the deploy branch {branch}"
    return None


def body_digest(body: bytes) -> str:
    """Identifies a delivery's content: the same signed body twice is a replay, whatever its delivery id says."""
    return hashlib.sha256(body).hexdigest()
