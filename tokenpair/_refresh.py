"""The opaque refresh-token format.

A refresh token reads ``tpr1.<family id>.<body>``, where the body is 64
URL-safe base64 characters holding a 32-byte random nonce followed by a
16-byte tag. The tag is an HMAC of family id and nonce under a key derived
from the signing key, so the manager can tell a genuine old token (reuse,
which revokes its family) from a forged one (rejected without touching the
store). Stores keep only the SHA-256 digest of the nonce: neither the store's
contents nor the signing key can produce a usable token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence

from ._errors import InvalidRefreshTokenError
from ._store import FAMILY_ID_PATTERN

__all__ = ["MAX_REFRESH_TOKEN_LENGTH", "mint", "open_token", "looks_like_refresh"]

PREFIX = "tpr1."
_NONCE_BYTES = 32
_TAG_BYTES = 16
_BODY_LENGTH = 64
MAX_REFRESH_TOKEN_LENGTH = len(PREFIX) + 64 + 1 + _BODY_LENGTH
_SHAPE = re.compile(
    re.escape(PREFIX) + f"({FAMILY_ID_PATTERN.pattern})" + r"\.([A-Za-z0-9_-]{64})"
)


def mint(family_id: str, tag_key: bytes) -> tuple[str, str]:
    """A new refresh token of ``family_id`` and the digest a store keeps."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    tag = _tag(tag_key, family_id, nonce)
    body = base64.urlsafe_b64encode(nonce + tag).decode("ascii")
    return f"{PREFIX}{family_id}.{body}", _digest(nonce)


def open_token(token: object, tag_keys: Sequence[bytes]) -> tuple[str, str]:
    """Check a presented refresh token; return its family id and digest.

    Raises :class:`InvalidRefreshTokenError` for anything that is not a
    refresh token issued with one of ``tag_keys``.
    """
    if token is None:
        raise InvalidRefreshTokenError("no refresh token was given")
    if not isinstance(token, str):
        raise InvalidRefreshTokenError(
            f"a refresh token is a string, not {type(token).__name__}"
        )
    if not token:
        raise InvalidRefreshTokenError("the refresh token is empty")
    if not token.startswith(PREFIX):
        if token.startswith("eyJ") and token.count(".") == 2:
            raise InvalidRefreshTokenError(
                "a JWT was given where a refresh token is expected"
            )
        raise InvalidRefreshTokenError("the refresh token is malformed")
    if len(token) > MAX_REFRESH_TOKEN_LENGTH:
        raise InvalidRefreshTokenError("the refresh token is too long")
    match = _SHAPE.fullmatch(token)
    if match is None:
        raise InvalidRefreshTokenError("the refresh token is malformed")
    family_id, body = match.groups()
    raw = base64.urlsafe_b64decode(body)
    nonce, tag = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
    for key in tag_keys:
        if hmac.compare_digest(tag, _tag(key, family_id, nonce)):
            return family_id, _digest(nonce)
    raise InvalidRefreshTokenError("the refresh token was not issued with these keys")


def looks_like_refresh(token: str) -> bool:
    return token.startswith(PREFIX)


def _tag(key: bytes, family_id: str, nonce: bytes) -> bytes:
    message = family_id.encode("ascii") + b"." + nonce
    return hmac.digest(key, message, hashlib.sha256)[:_TAG_BYTES]


def _digest(nonce: bytes) -> str:
    digest = hashlib.sha256(nonce).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
