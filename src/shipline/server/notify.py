"""Optional notifications: a JSON summary POSTed to the app's configured URL when a run ends."""

from __future__ import annotations

from typing import Any

import httpx


def summary(run: dict[str, Any], dashboard: str) -> dict[str, Any]:
    keys = ("id", "app", "kind", "sha", "short_sha", "ref", "release", "source", "actor", "status", "reason", "stages",
            "queued_at", "started_at", "finished_at")
    return {**{k: run.get(k) for k in keys}, "url": f"{dashboard}/runs/{run['id']}"}


async def post(url: str, payload: dict[str, Any]) -> str | None:
    """None when the receiver accepted it; otherwise why not (recorded in the run's log, never raised)."""
    try:
        async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:
            resp = await client.post(url, json=payload)
    except httpx.HTTPError as exc:
        return f"notification to {url} failed: {type(exc).__name__}"
    return None if resp.is_success else f"notification to {url} answered HTTP {resp.status_code}"
