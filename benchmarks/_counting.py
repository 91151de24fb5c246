"""Counting what an operation asks of its store, instead of assuming it."""

from __future__ import annotations

from collections import Counter

from tokenpair import (
    FamilyState,
    NewFamily,
    Rotation,
    RotationResult,
    Store,
)

__all__ = ["CountingStore"]


class CountingStore(Store):
    """Passes every call through to ``inner`` and counts it by method name.

    Only the counting pass goes through this proxy; timed runs talk to the
    store directly, so the proxy's own cost is in no figure. Closing the
    proxy leaves the inner store open: the benchmark owns it.
    """

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"CountingStore({self.inner!r})"

    async def setup(self) -> None:
        self.calls["setup"] += 1
        await self.inner.setup()

    def new_family_id(self, subject: str) -> str:
        self.calls["new_family_id"] += 1
        return self.inner.new_family_id(subject)

    async def create_family(self, family: NewFamily) -> None:
        self.calls["create_family"] += 1
        await self.inner.create_family(family)

    async def rotate(self, rotation: Rotation) -> RotationResult:
        self.calls["rotate"] += 1
        return await self.inner.rotate(rotation)

    async def get_family(self, family_id: str) -> FamilyState | None:
        self.calls["get_family"] += 1
        return await self.inner.get_family(family_id)

    async def revoke_family(self, family_id: str, now: float) -> None:
        self.calls["revoke_family"] += 1
        await self.inner.revoke_family(family_id, now)

    async def revoke_subject(
        self, subject: str, now: float, remember_until: float
    ) -> int:
        self.calls["revoke_subject"] += 1
        return await self.inner.revoke_subject(subject, now, remember_until)

    async def subject_revoked_at(self, subject: str, now: float) -> float | None:
        self.calls["subject_revoked_at"] += 1
        return await self.inner.subject_revoked_at(subject, now)

    async def purge_expired(self, now: float) -> int:
        self.calls["purge_expired"] += 1
        return await self.inner.purge_expired(now)

    async def aclose(self) -> None:
        """The inner store stays open."""
