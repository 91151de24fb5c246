"""What the manager's CPU work cannot go below: bare joserfc and bare hashing.

The floors sign and check tokens of the shape the manager issues (header
``alg``/``typ``/``kid``; claims ``sub``, ``exp``, ``iat`` and a 24-character
``jti``) with the same secret, so a ratio to them is the manager's own
overhead and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import OctKey

__all__ = ["CpuFloors"]

_ACCESS_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_ACCESS_TTL = 15 * 60


class CpuFloors:
    """Signing plus a refresh secret; decoding plus the manager's claim
    checks; the refresh secret alone."""

    def __init__(self, secret: bytes) -> None:
        self._key = OctKey.import_key(secret)
        self._key.ensure_kid()
        self._header = {"alg": "HS256", "typ": "at+jwt", "kid": self._key.kid}
        self._algorithms = ["HS256"]
        self._tag_key = hashlib.sha256(b"floor tag key" + secret).digest()
        self._family = b"floorfamily0123456789ab"
        self.sample_token = self.sign("floor-subject")

    def sign(self, subject: str) -> str:
        now = time.time()
        claims: dict[str, Any] = {
            "sub": subject,
            "exp": math.floor(now + _ACCESS_TTL),
            "iat": math.floor(now),
            "jti": base64.urlsafe_b64encode(secrets.token_bytes(18)).decode("ascii"),
        }
        return jwt.encode(
            self._header, claims, self._key, self._algorithms, default_type=None
        )

    def secret(self) -> bytes:
        nonce = secrets.token_bytes(32)
        hmac.digest(self._tag_key, self._family + b"." + nonce, hashlib.sha256)
        return hashlib.sha256(nonce).digest()

    def sign_and_secret(self, subject: str) -> str:
        token = self.sign(subject)
        self.secret()
        return token

    def decode(self, token: str) -> dict[str, Any]:
        decoded = jwt.decode(token, self._key, self._algorithms)
        header, claims = decoded.header, decoded.claims
        token_type = header.get("typ")
        if not isinstance(token_type, str) or token_type.lower() not in _ACCESS_TYPES:
            raise ValueError("typ")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise ValueError("sub")
        if not isinstance(claims.get("jti"), str):
            raise ValueError("jti")
        now = time.time()
        expires_at = _time(claims, "exp")
        issued_at = _time(claims, "iat")
        not_before = claims.get("nbf")
        if not_before is not None:
            _time(claims, "nbf")
        if now >= expires_at or issued_at > now:
            raise ValueError("expired or early")
        return claims


def _time(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
    ):
        raise ValueError(name)
    return float(value)
