"""JWT access tokens with opaque refresh tokens that rotate atomically.

>>> manager = TokenPairManager(secret, store=open_store("sqlite:///tokens.db"))
>>> pair = await manager.generate_token_pair({"sub": "alice"})
>>> pair = await manager.refresh(pair.refresh_token)
"""

from ._errors import (
    AccessTokenExpiredError,
    ConfigurationError,
    InvalidAccessTokenError,
    InvalidRefreshTokenError,
    InvalidUserDataError,
    RefreshTokenError,
    RefreshTokenExpiredError,
    RefreshTokenReusedError,
    RefreshTokenRevokedError,
    StoreError,
    TokenPairError,
)
from ._manager import (
    DEFAULT_ACCESS_TTL,
    DEFAULT_REFRESH_TTL,
    DEFAULT_REUSE_GRACE,
    TokenPairManager,
)
from ._memory import MemoryStore
from ._store import (
    FAMILY_ID_PATTERN,
    FamilyState,
    NewFamily,
    Rotation,
    RotationResult,
    RotationStatus,
    Store,
)
from ._token import Token
from ._urls import open_store

__version__ = "0.1.0"

__all__ = [
    # issuing and checking tokens
    "TokenPairManager",
    "Token",
    "DEFAULT_ACCESS_TTL",
    "DEFAULT_REFRESH_TTL",
    "DEFAULT_REUSE_GRACE",
    # stores
    "open_store",
    "Store",
    "MemoryStore",
    "NewFamily",
    "Rotation",
    "RotationResult",
    "RotationStatus",
    "FamilyState",
    "FAMILY_ID_PATTERN",
    # errors
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
