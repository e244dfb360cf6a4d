"""The key's account usage, as the gateway's `GET /api/usage/token/` reports it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class KeyUsage:
    """What the usage endpoint says about the simulator's one key.

    `expires_at` is Unix seconds, 0 for never (the gateway's convention). A key whose expiry
    has passed is refused with 401 on every route, as the gateway refuses an expired token.
    """

    name: str = "demo-key"
    granted: int = 500_000
    used: int = 0
    unlimited: bool = False
    expires_at: int = 0

    def __post_init__(self) -> None:
        if self.granted < 0 or self.used < 0 or self.expires_at < 0:
            raise ValueError("quota_granted, quota_used and key_expires_at must be >= 0")

    def expired(self, now_unix: float) -> bool:
        return self.expires_at != 0 and now_unix >= self.expires_at

    def body(self) -> dict[str, Any]:
        return {"code": True, "message": "ok", "data": {
            "object": "token_usage",
            "name": self.name,
            "total_granted": self.granted,
            "total_used": self.used,
            "total_available": max(0, self.granted - self.used),
            "unlimited_quota": self.unlimited,
            "model_limits": {},
            "model_limits_enabled": False,
            "expires_at": self.expires_at,
        }}
