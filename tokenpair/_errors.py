"""The exceptions tokenpair raises.

Every error is a :class:`TokenPairError` and carries ``error``, the OAuth 2.0
error code a server answers with (RFC 6749 section 5.2, RFC 6750 section 3.1),
so a token endpoint can turn any of them into a response without a lookup
table of its own::

    TokenPairError
    ├── InvalidAccessTokenError          invalid_token
    │   └── AccessTokenExpiredError      invalid_token
    ├── RefreshTokenError                invalid_grant
    │   ├── InvalidRefreshTokenError     invalid_grant
    │   ├── RefreshTokenExpiredError     invalid_grant
    │   ├── RefreshTokenRevokedError     invalid_grant
    │   └── RefreshTokenReusedError      invalid_grant
    ├── InvalidUserDataError             invalid_request
    ├── StoreError                       server_error
    └── ConfigurationError               server_error

Messages never contain a token, a secret or a key: they are safe to log.
"""

from __future__ import annotations

__all__ = [
    "TokenPairError",
    "InvalidAccessTokenError",
    "AccessTokenExpiredError",
    "RefreshTokenError",
    "InvalidRefreshTokenError",
    "RefreshTokenExpiredError",
    "RefreshTokenRevokedError",
    "RefreshTokenReusedError",
    "InvalidUserDataError",
    "StoreError",
    "ConfigurationError",
]


class TokenPairError(Exception):
    """Base class of every error raised by tokenpair.

    ``error`` is the OAuth 2.0 error code; ``description`` is a sentence fit
    for the ``error_description`` field of a response.
    """

    error: str = "server_error"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"


class InvalidAccessTokenError(TokenPairError):
    """The access token is malformed, forged, of the wrong type, for another
    issuer or audience, not yet valid, or issued before its subject was
    logged out everywhere."""

    error = "invalid_token"


class AccessTokenExpiredError(InvalidAccessTokenError):
    """The access token's ``exp`` has passed (allowing for the leeway)."""


class RefreshTokenError(TokenPairError):
    """A refresh token cannot be used; the grant is refused."""

    error = "invalid_grant"


class InvalidRefreshTokenError(RefreshTokenError):
    """Malformed, forged, unknown, or not a refresh token at all."""


class RefreshTokenExpiredError(RefreshTokenError):
    """The refresh token outlived its idle lifetime or its family's cap."""


class RefreshTokenRevokedError(RefreshTokenError):
    """The token's family was revoked (logout, revoke, or earlier reuse)."""


class RefreshTokenReusedError(RefreshTokenError):
    """An already rotated refresh token was presented again.

    The whole family has been revoked as a consequence (RFC 9700, section
    4.14.2): whoever holds the latest token of that family must log in again.
    """


class InvalidUserDataError(TokenPairError):
    """User data, or the claims made from it, cannot go into a token."""

    error = "invalid_request"


class StoreError(TokenPairError):
    """The store failed or could not be reached; the cause is chained."""

    error = "server_error"


class ConfigurationError(TokenPairError):
    """A setting given to tokenpair is invalid."""

    error = "server_error"
