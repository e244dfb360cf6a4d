"""`plan --check-key`: ask the provider how much quota the key has left and when it expires.

The gateway's usage route (`GET /api/usage/token/`, Bearer auth) answers
`{"data": {"total_available", "expires_at", "unlimited_quota", ...}}`. Not every deployment
offers it, so every way it can fail becomes one plain sentence, never an exception. The key is
sent in the header only and never appears in what is returned.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

USAGE_PATH = "/api/usage/token/"
TIMEOUT = 10.0
MAX_BODY = 1 << 20  # an answer bigger than this is not the usage object


@dataclass(frozen=True)
class KeyQuota:
    available: float | None  # None: unlimited
    expires_at: int  # Unix seconds; 0: never
    name: str | None = None

    def describe(self, currency: str = "") -> str:
        left = ("unlimited quota" if self.available is None
                else f"{_number(self.available)} quota left")
        expiry = ("never expires" if not self.expires_at else
                  "expires " + datetime.fromtimestamp(self.expires_at, timezone.utc)
                  .strftime("%Y-%m-%d %H:%M UTC"))
        units = " (the provider's units, which may not be your currency)" if currency else ""
        return f"key: {left}{units}, {expiry}"

    def to_json(self) -> dict[str, Any]:
        return {"ok": True, "available": self.available, "unlimited": self.available is None,
                "expires_at": self.expires_at or None}


async def check_key(base_url: str, api_key: str, *, timeout: float = TIMEOUT) -> KeyQuota | str:
    """The key's quota, or a sentence saying why it is not known."""
    import aiohttp  # only --check-key needs the network stack

    url = base_url.rstrip("/") + USAGE_PATH
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
            async with http.get(url, headers={"Authorization": f"Bearer {api_key}"},
                                allow_redirects=False) as resp:
                body = await resp.content.read(MAX_BODY + 1)
                status = resp.status
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        reason = "no answer in time" if isinstance(exc, asyncio.TimeoutError) else (
            type(exc).__name__ if not str(exc) else str(exc))
        return f"key check failed: cannot reach {url} ({_scrub(reason, api_key)})"
    if status in (401, 403):
        return (f"key check: the provider refused the key (HTTP {status}"
                f"{_message(body, api_key)}); check OCTOPUSX_API_KEY")
    if status != 200:
        return (f"key check: {url} answered HTTP {status}{_message(body, api_key)}; this "
                "provider may not offer the usage endpoint, so the key's quota is unknown")
    return _parse(body, url)


def _parse(body: bytes, url: str) -> KeyQuota | str:
    unknown = f"key check: {url} did not answer with a usage object; the key's quota is unknown"
    if len(body) > MAX_BODY:
        return unknown
    try:
        data = json.loads(body).get("data")
    except (ValueError, AttributeError):
        return unknown
    if not isinstance(data, dict):
        return unknown
    available, expires = data.get("total_available"), data.get("expires_at", 0)
    unlimited = data.get("unlimited_quota") is True
    if not unlimited and (isinstance(available, bool) or not isinstance(available, (int, float))):
        return unknown
    if isinstance(expires, bool) or not isinstance(expires, (int, float)) or expires < 0:
        expires = 0
    name = data.get("name") if isinstance(data.get("name"), str) else None
    quota = None if unlimited or available is None else float(available)
    return KeyQuota(quota, int(expires), name)


def _message(body: bytes, api_key: str) -> str:
    """The provider's own words from any of its three error shapes, briefly."""
    try:
        data = json.loads(body[:MAX_BODY])
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    error = data.get("error")
    text = error.get("message") if isinstance(error, dict) else data.get("message")
    return f": {_scrub(str(text), api_key)[:200]}" if text else ""


def _scrub(text: str, api_key: str) -> str:
    return text.replace(api_key, "***") if api_key else text


def _number(value: float) -> str:
    return f"{int(value):,}" if value == int(value) else f"{value:,.2f}"
