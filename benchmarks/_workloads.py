"""The operations measured: tokenpair's, their floors, and the hand-rolled
peer's.

Every worker task refreshes a family of its own (concurrent refreshes of one
token are the race check's business, not a throughput figure) and checks an
access token of its own. Revocations take refresh tokens issued by the issue
job, so each one revokes a live family.

Besides the operations, ``rotate`` calls the store's own ``Store.rotate``
with digests made up on the spot: a refresh without the manager (no token to
open, nothing to sign), which splits a refresh's cost between the store and
the manager.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import time
from collections import deque
from typing import Any

from tokenpair import NewFamily, Rotation, RotationStatus, TokenPairManager

from ._backends import FloorCall
from ._floors import CpuFloors
from ._harness import EXHAUSTED, Job

__all__ = [
    "OPERATIONS",
    "HandRolledPeer",
    "OurWorkload",
    "PeerRefusedError",
    "PeerWorkload",
    "floor_jobs",
    "floors_for",
]

OPERATIONS = ("issue", "refresh", "verify", "authenticate", "revoke")

#: Refresh tokens kept for the revoke job; older ones are dropped unrevoked.
_POOL_LIMIT = 200_000


def floors_for(operation: str, *, remote: bool) -> list[str]:
    """The floors an operation is compared with, the headline one first.

    In a store without a server the manager's CPU work is all there is. With
    a server, issue, refresh and revoke rest on one atomic write and
    authenticate on one point read; for issue and refresh the CPU floor is
    added to the write as a second, stricter comparison.
    """
    if not remote:
        return {
            "issue": ["sign+secret"],
            "refresh": ["sign+secret", "rotate"],
            "verify": ["decode"],
            "authenticate": ["decode"],
            "revoke": ["secret"],
        }[operation]
    return {
        "issue": ["sign+secret+write", "sign+secret"],
        "refresh": ["write", "sign+secret+write", "rotate"],
        "verify": ["decode"],
        "authenticate": ["decode+read", "decode"],
        "revoke": ["write"],
    }[operation]


class OurWorkload:
    """tokenpair's five operations through one manager."""

    def __init__(self, manager: TokenPairManager) -> None:
        self.manager = manager
        self.pool: deque[str] = deque(maxlen=_POOL_LIMIT)
        self._serial = itertools.count()
        self._chains: list[str] = []
        self._access: list[str] = []
        # [family id, digest of its current token] per worker, for ``rotate``.
        self._rotated: list[list[str]] = []

    async def prepare(self, concurrency: int) -> None:
        """Give every worker a family to refresh, one to rotate in the store
        directly, and an access token."""
        # Cleared in place: the job closures hold these very lists.
        self._chains.clear()
        self._access.clear()
        self._rotated.clear()
        store = self.manager.store
        for worker in range(concurrency):
            pair = await self.manager.generate_token_pair({"sub": f"worker-{worker}"})
            self._chains.append(pair.refresh_token)
            self._access.append(pair.access_token)
            subject = f"rotor-{worker}"
            family_id, digest = store.new_family_id(subject), _digest()
            now = time.time()
            await store.create_family(
                NewFamily(
                    family_id=family_id,
                    subject=subject,
                    user_data=json.dumps({"sub": subject}),
                    token=digest,
                    created_at=now,
                    expires_at=now + self.manager.refresh_ttl,
                    family_expires_at=None,
                )
            )
            self._rotated.append([family_id, digest])

    def jobs(self) -> list[Job]:
        manager, pool, serial = self.manager, self.pool, self._serial
        chains, access = self._chains, self._access

        async def issue(worker: int) -> object:
            pair = await manager.generate_token_pair({"sub": f"user-{next(serial)}"})
            pool.append(pair.refresh_token)
            return None

        async def refresh(worker: int) -> object:
            pair = await manager.refresh(chains[worker])
            chains[worker] = pair.refresh_token
            return None

        async def verify(worker: int) -> object:
            return manager.verify_access_token(access[worker])

        async def authenticate(worker: int) -> object:
            return await manager.authenticate(access[worker])

        async def revoke(worker: int) -> object:
            if not pool:
                return EXHAUSTED
            await manager.revoke(pool.popleft())
            return None

        calls = (issue, refresh, verify, authenticate, revoke)
        pairs = zip(OPERATIONS, calls, strict=True)
        return [Job("ours", name, call) for name, call in pairs]

    def store_jobs(self) -> list[Job]:
        """The store's rotation without the manager, as a floor of refresh."""
        store, rotated = self.manager.store, self._rotated
        refresh_ttl, reuse_grace = self.manager.refresh_ttl, self.manager.reuse_grace

        async def rotate(worker: int) -> object:
            family = rotated[worker]
            successor = _digest()
            result = await store.rotate(
                Rotation(
                    family_id=family[0],
                    presented=family[1],
                    successor=successor,
                    now=time.time(),
                    refresh_ttl=refresh_ttl,
                    reuse_grace=reuse_grace,
                )
            )
            if result.status is not RotationStatus.ROTATED:
                raise RuntimeError(f"the store's rotation found {result.status.value}")
            family[1] = successor
            return None

        return [Job("floor", "rotate", rotate)]


def _digest() -> str:
    """A stand-in for a refresh token's digest, of the same size and shape."""
    digest = hashlib.sha256(secrets.token_bytes(32)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def floor_jobs(cpu: CpuFloors, remote: dict[str, FloorCall]) -> list[Job]:
    token = cpu.sample_token

    async def sign_secret(worker: int) -> object:
        return cpu.sign_and_secret("floor-subject")

    async def decode(worker: int) -> object:
        return cpu.decode(token)

    async def secret(worker: int) -> object:
        return cpu.secret()

    jobs = [
        Job("floor", "sign+secret", sign_secret),
        Job("floor", "decode", decode),
    ]
    if not remote:
        jobs.append(Job("floor", "secret", secret))
        return jobs
    write, read = remote["write"], remote["read"]

    async def sign_secret_write(worker: int) -> object:
        cpu.sign_and_secret("floor-subject")
        return await write()

    async def decode_read(worker: int) -> object:
        cpu.decode(token)
        return await read()

    async def write_only(worker: int) -> object:
        return await write()

    async def read_only(worker: int) -> object:
        return await read()

    jobs += [
        Job("floor", "write", write_only),
        Job("floor", "read", read_only),
        Job("floor", "sign+secret+write", sign_secret_write),
        Job("floor", "decode+read", decode_read),
    ]
    return jobs


class PeerRefusedError(Exception):
    """The hand-rolled peer refused a refresh token."""


class HandRolledPeer:
    """Refresh tokens the way most tutorials show them, for comparison.

    PyJWT signs the access token. The refresh token is ``<session>.<secret>``
    and Redis keeps ``{"sub", "token"}`` under the session key. A refresh
    GETs the session, compares the secret and SETs a new one: two round
    trips with nothing making them atomic, so concurrent refreshes of one
    token can all pass the comparison before any of them writes.
    """

    def __init__(
        self,
        client: Any,
        prefix: str,
        secret: bytes,
        access_ttl: int = 15 * 60,
        refresh_ttl: int = 7 * 24 * 3600,
    ) -> None:
        import jwt as pyjwt

        self._jwt = pyjwt
        self._client = client
        self._prefix = prefix
        self._secret = secret
        self._access_ttl = access_ttl
        self._refresh_ttl = refresh_ttl

    def _sign(self, subject: str) -> str:
        now = int(time.time())
        claims = {
            "sub": subject,
            "iat": now,
            "exp": now + self._access_ttl,
            "jti": secrets.token_urlsafe(18),
        }
        return str(
            self._jwt.encode(
                claims, self._secret, algorithm="HS256", headers={"typ": "at+jwt"}
            )
        )

    async def issue(self, subject: str) -> tuple[str, str]:
        session, secret = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
        record = json.dumps({"sub": subject, "token": secret})
        await self._client.set(
            f"{self._prefix}s:{session}", record, ex=self._refresh_ttl
        )
        return self._sign(subject), f"{session}.{secret}"

    async def refresh(self, refresh_token: str) -> tuple[str, str]:
        session, _, presented = refresh_token.partition(".")
        key = f"{self._prefix}s:{session}"
        raw = await self._client.get(key)
        if raw is None:
            raise PeerRefusedError("unknown refresh token")
        stored = json.loads(raw)
        if not hmac.compare_digest(stored["token"], presented):
            raise PeerRefusedError("stale refresh token")
        successor = secrets.token_urlsafe(32)
        record = json.dumps({"sub": stored["sub"], "token": successor})
        await self._client.set(key, record, ex=self._refresh_ttl)
        return self._sign(stored["sub"]), f"{session}.{successor}"

    def verify(self, access_token: str) -> dict[str, Any]:
        claims: dict[str, Any] = self._jwt.decode(
            access_token,
            self._secret,
            algorithms=["HS256"],
            options={"require": ["exp", "iat", "sub", "jti"]},
        )
        return claims

    async def authenticate(self, access_token: str) -> dict[str, Any]:
        claims = self.verify(access_token)
        cutoff = await self._client.get(f"{self._prefix}c:{claims['sub']}")
        if cutoff is not None and float(cutoff) >= claims["iat"]:
            raise PeerRefusedError("logged out")
        return claims

    async def revoke(self, refresh_token: str) -> None:
        session = refresh_token.partition(".")[0]
        await self._client.delete(f"{self._prefix}s:{session}")


class PeerWorkload:
    """The peer's five operations, shaped like :class:`OurWorkload`'s."""

    def __init__(self, peer: HandRolledPeer) -> None:
        self.peer = peer
        self.pool: deque[str] = deque(maxlen=_POOL_LIMIT)
        self._serial = itertools.count()
        self._chains: list[str] = []
        self._access: list[str] = []

    async def prepare(self, concurrency: int) -> None:
        self._chains.clear()
        self._access.clear()
        for worker in range(concurrency):
            access, refresh = await self.peer.issue(f"worker-{worker}")
            self._chains.append(refresh)
            self._access.append(access)

    def jobs(self) -> list[Job]:
        peer, pool, serial = self.peer, self.pool, self._serial
        chains, access = self._chains, self._access

        async def issue(worker: int) -> object:
            _, refresh_token = await peer.issue(f"user-{next(serial)}")
            pool.append(refresh_token)
            return None

        async def refresh(worker: int) -> object:
            _, chains[worker] = await peer.refresh(chains[worker])
            return None

        async def verify(worker: int) -> object:
            return peer.verify(access[worker])

        async def authenticate(worker: int) -> object:
            return await peer.authenticate(access[worker])

        async def revoke(worker: int) -> object:
            if not pool:
                return EXHAUSTED
            await peer.revoke(pool.popleft())
            return None

        calls = (issue, refresh, verify, authenticate, revoke)
        pairs = zip(OPERATIONS, calls, strict=True)
        return [Job("peer", name, call) for name, call in pairs]
