"""The storage interface every adapter implements.

A store keeps one record per *family*: the chain of refresh tokens that began
with one login. The record holds digests of at most two tokens (the current one
and the one rotated last), never a token itself, so nothing a store holds can
be turned back into a usable refresh token.

The decision that makes rotation safe (is the presented token the current one,
the one just rotated within the grace window, or an older one) is taken by the
store, atomically, in whatever form its engine offers: a Lua script, one SQL
statement, a conditional single-document update. :meth:`Store.rotate` states
the rule; ``tokenpair.testing`` holds the suite that checks a store obeys it.
"""

from __future__ import annotations

import abc
import enum
import re
import secrets
from dataclasses import dataclass
from types import TracebackType
from typing import Self

__all__ = [
    "FAMILY_ID_PATTERN",
    "FamilyState",
    "NewFamily",
    "Rotation",
    "RotationResult",
    "RotationStatus",
    "Store",
]

FAMILY_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{8,64}")
"""What a family id may look like: it travels inside refresh tokens and keys."""


class RotationStatus(enum.Enum):
    """What :meth:`Store.rotate` found and did."""

    ROTATED = "rotated"
    """The presented token was current; it is consumed and the successor
    stored (or, with no successor, the family retired).
    """
    RETRIED = "retried"
    """The presented token was the one rotated last, within the grace
    window: the successor replaced the current token.
    """
    REUSED = "reused"
    """An older token was presented: the family is now revoked."""
    REVOKED = "revoked"
    """The family was already revoked; nothing changed."""
    EXPIRED = "expired"
    """The current token's lifetime has passed; nothing changed."""
    UNKNOWN = "unknown"
    """No such family (never created, or purged); nothing changed."""


@dataclass(frozen=True, slots=True)
class NewFamily:
    """A family to create, holding its first refresh token's digest."""

    family_id: str
    subject: str
    user_data: str
    """The user data as JSON text, kept as it is."""
    token: str
    """Digest of the first refresh token."""
    created_at: float
    expires_at: float
    """When the first token expires, already capped by ``family_expires_at``."""
    family_expires_at: float | None
    """When the family ends whatever happens, or ``None`` for no cap."""


@dataclass(frozen=True, slots=True)
class Rotation:
    """A request to consume one refresh token and store its successor."""

    family_id: str
    presented: str
    """Digest of the presented token."""
    successor: str | None
    """Digest of the successor, or ``None`` to retire the family instead."""
    now: float
    refresh_ttl: float
    """Idle lifetime of the successor, in seconds."""
    reuse_grace: float
    """How long, in seconds, the token rotated last may be presented again."""
    user_data: str | None = None
    """New user data (JSON text) to keep with the family, or ``None``."""


@dataclass(frozen=True, slots=True)
class RotationResult:
    """The outcome of :meth:`Store.rotate`.

    ``subject``, ``user_data`` and ``expires_at`` (the successor's idle
    expiry) are set for ``ROTATED`` and ``RETRIED``, and may be ``None``
    otherwise.
    """

    status: RotationStatus
    subject: str | None = None
    user_data: str | None = None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class FamilyState:
    """A family as stored, for reads that precede a rotation."""

    family_id: str
    subject: str
    user_data: str
    current: str
    previous: str | None
    created_at: float
    rotated_at: float | None
    expires_at: float
    family_expires_at: float | None
    revoked_at: float | None
    generation: int


class Store(abc.ABC):
    """Where refresh-token families live.

    Implementations must make :meth:`rotate` atomic with respect to every
    other call on the same family, from any process sharing the backend.
    Times are Unix seconds as floats from the manager's clock; a store never
    reads a clock of its own to decide expiry (an engine's native expiry may
    remove records, but only after the time the manager gave).

    Stores are async context managers; :meth:`aclose` releases what the store
    opened itself and leaves alone a client it was handed.
    """

    async def setup(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Create tables, indexes or scripts. Idempotent; the manager calls it
        once before first use."""

    def new_family_id(self, subject: str) -> str:
        """Return a fresh, unguessable family id matching
        :data:`FAMILY_ID_PATTERN`.

        Stores that place a subject's families together (for example in one
        Redis Cluster hash slot) override this; ``subject`` must not be
        recoverable from the result.
        """
        return secrets.token_urlsafe(16)

    @abc.abstractmethod
    async def create_family(self, family: NewFamily) -> None:
        """Store a new family. Family ids are unique; a clash is a
        :class:`~tokenpair.StoreError`. A family created at or before its
        subject's remembered cut-off (a login racing a logout everywhere) is
        stored as revoked."""

    @abc.abstractmethod
    async def rotate(self, rotation: Rotation) -> RotationResult:
        """Atomically compare and rotate. With F the stored family:

        1. no F: ``UNKNOWN``.
        2. F revoked: ``REVOKED``.
        3. ``now >= F.expires_at``: ``EXPIRED``.
        4. ``presented == F.current``: with a successor, F.previous becomes
           F.current, F.current the successor, F.rotated_at ``now``,
           F.expires_at ``min(now + refresh_ttl, F.family_expires_at)``;
           without one, F is revoked. ``ROTATED``.
        5. a successor, ``reuse_grace > 0``, ``presented == F.previous`` and
           ``now < F.rotated_at + reuse_grace``: F.current becomes the
           successor and F.expires_at is renewed as in 4; F.previous and
           F.rotated_at stay. ``RETRIED``.
        6. otherwise F is revoked at ``now``: ``REUSED``.

        When a successor is stored (4 and 5) the generation grows by one and
        ``user_data``, if given,
        replaces the stored data. Cases 1 to 3 write nothing.
        """

    @abc.abstractmethod
    async def get_family(self, family_id: str) -> FamilyState | None:
        """Read a family as stored, or ``None``."""

    @abc.abstractmethod
    async def revoke_family(self, family_id: str, now: float) -> None:
        """Revoke a family. Unknown or already revoked families are no error.
        The record stays (as a tombstone) until its ``expires_at``, so that a
        later attempt is reported as revoked rather than unknown."""

    @abc.abstractmethod
    async def revoke_subject(
        self, subject: str, now: float, remember_until: float
    ) -> int:
        """Revoke every live family of ``subject`` and remember ``now`` as the
        subject's cut-off until ``remember_until``, replacing an earlier
        cut-off. Return how many live families were revoked."""

    @abc.abstractmethod
    async def subject_revoked_at(self, subject: str, now: float) -> float | None:
        """The subject's cut-off if it is still remembered at ``now``."""

    async def purge_expired(self, now: float) -> int:
        """Delete what expired before ``now`` and return how many records
        went. Stores whose engine expires records by itself keep the default,
        which does nothing."""
        return 0

    async def aclose(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Release connections the store opened itself."""

    async def __aenter__(self) -> Self:
        await self.setup()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
