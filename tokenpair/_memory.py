from __future__ import annotations

import heapq
import threading
from dataclasses import dataclass

from ._errors import StoreError
from ._store import (
    FamilyState,
    NewFamily,
    Rotation,
    RotationResult,
    RotationStatus,
    Store,
)

__all__ = ["MemoryStore"]

# Expired records removed per write, so one call never pays for a whole sweep.
_SWEEP_BATCH = 32


@dataclass(slots=True)
class _Family:
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


class MemoryStore(Store):
    """Keeps families in this process: for tests, demos and single-process
    services that accept losing every session on restart.

    Every method finishes without awaiting, so a call is atomic for the event
    loop; a lock makes it atomic across threads too. Expired families are
    removed a few at a time on every write, and all at once by
    :meth:`purge_expired`.
    """

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}
        self._by_subject: dict[str, set[str]] = {}
        self._cutoffs: dict[str, tuple[float, float]] = {}
        self._expiry_queue: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryStore(families={len(self._families)})"

    async def create_family(self, family: NewFamily) -> None:
        with self._lock:
            self._sweep(family.created_at, _SWEEP_BATCH)
            if family.family_id in self._families:
                raise StoreError("a family with this id exists already")
            self._families[family.family_id] = _Family(
                subject=family.subject,
                user_data=family.user_data,
                current=family.token,
                previous=None,
                created_at=family.created_at,
                rotated_at=None,
                expires_at=family.expires_at,
                family_expires_at=family.family_expires_at,
                revoked_at=self._revoked_on_arrival(family),
                generation=0,
            )
            self._by_subject.setdefault(family.subject, set()).add(family.family_id)
            heapq.heappush(self._expiry_queue, (family.expires_at, family.family_id))

    def _revoked_on_arrival(self, family: NewFamily) -> float | None:
        cutoff = self._cutoffs.get(family.subject)
        if cutoff is not None and family.created_at <= cutoff[0] < cutoff[1]:
            return cutoff[0]
        return None

    async def rotate(self, rotation: Rotation) -> RotationResult:
        now = rotation.now
        with self._lock:
            self._sweep(now, _SWEEP_BATCH)
            family = self._families.get(rotation.family_id)
            if family is None:
                return RotationResult(RotationStatus.UNKNOWN)
            if family.revoked_at is not None:
                return RotationResult(RotationStatus.REVOKED)
            if now >= family.expires_at:
                return RotationResult(RotationStatus.EXPIRED)
            presented = rotation.presented
            if presented == family.current:
                if rotation.successor is None:
                    family.revoked_at = now
                    return RotationResult(
                        RotationStatus.ROTATED, family.subject, family.user_data
                    )
                family.previous = family.current
                family.rotated_at = now
                status = RotationStatus.ROTATED
            elif (
                rotation.successor is not None
                and rotation.reuse_grace > 0
                and presented == family.previous
                and family.rotated_at is not None
                and now < family.rotated_at + rotation.reuse_grace
            ):
                status = RotationStatus.RETRIED
            else:
                family.revoked_at = now
                return RotationResult(RotationStatus.REUSED, family.subject)
            family.current = rotation.successor
            family.generation += 1
            expires_at = now + rotation.refresh_ttl
            if family.family_expires_at is not None:
                expires_at = min(expires_at, family.family_expires_at)
            family.expires_at = expires_at
            if rotation.user_data is not None:
                family.user_data = rotation.user_data
            return RotationResult(status, family.subject, family.user_data, expires_at)

    async def get_family(self, family_id: str) -> FamilyState | None:
        with self._lock:
            family = self._families.get(family_id)
            if family is None:
                return None
            return FamilyState(
                family_id=family_id,
                subject=family.subject,
                user_data=family.user_data,
                current=family.current,
                previous=family.previous,
                created_at=family.created_at,
                rotated_at=family.rotated_at,
                expires_at=family.expires_at,
                family_expires_at=family.family_expires_at,
                revoked_at=family.revoked_at,
                generation=family.generation,
            )

    async def revoke_family(self, family_id: str, now: float) -> None:
        with self._lock:
            family = self._families.get(family_id)
            if family is not None and family.revoked_at is None:
                family.revoked_at = now

    async def revoke_subject(
        self, subject: str, now: float, remember_until: float
    ) -> int:
        with self._lock:
            self._cutoffs[subject] = (now, remember_until)
            revoked = 0
            for family_id in self._by_subject.get(subject, ()):
                family = self._families[family_id]
                if family.revoked_at is None and now < family.expires_at:
                    family.revoked_at = now
                    revoked += 1
            return revoked

    async def subject_revoked_at(self, subject: str, now: float) -> float | None:
        cutoff = self._cutoffs.get(subject)
        if cutoff is None or now >= cutoff[1]:
            return None
        return cutoff[0]

    async def purge_expired(self, now: float) -> int:
        with self._lock:
            removed = self._sweep(now, None)
            stale = [s for s, (_, until) in self._cutoffs.items() if now >= until]
            for subject in stale:
                del self._cutoffs[subject]
            return removed + len(stale)

    def _sweep(self, now: float, limit: int | None) -> int:
        queue = self._expiry_queue
        removed = 0
        while queue and queue[0][0] < now and (limit is None or removed < limit):
            _, family_id = heapq.heappop(queue)
            family = self._families.get(family_id)
            if family is None:
                continue
            if family.expires_at >= now:
                # Rotation pushed the expiry out since this entry was queued.
                heapq.heappush(queue, (family.expires_at, family_id))
                continue
            del self._families[family_id]
            members = self._by_subject.get(family.subject)
            if members is not None:
                members.discard(family_id)
                if not members:
                    del self._by_subject[family.subject]
            removed += 1
        return removed
