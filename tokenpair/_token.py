from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Token"]


@dataclass(frozen=True, slots=True)
class Token:
    """A signed access token and the refresh token issued with it.

    ``expires_at`` and ``created_at`` belong to the access token, in whole
    Unix seconds; ``refresh_expires_at`` is when the refresh token lapses if
    it is not used first. The repr hides both tokens.
    """

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: int
    created_at: int
    refresh_expires_at: int
    token_type: str = "Bearer"

    def expires_in(self, now: float | None = None) -> int:
        """Seconds until the access token expires, never negative.

        ``now`` defaults to the system clock; pass the manager's clock in
        code that runs on another one.
        """
        current = time.time() if now is None else now
        return max(0, math.ceil(self.expires_at - current))

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        """The successful token response of RFC 6749 section 5.1, plus
        ``expires_at`` and ``created_at``."""
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in(now),
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at,
            "created_at": self.created_at,
        }
