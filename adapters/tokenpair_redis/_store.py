"""The Redis store: one hash per family, Lua scripts for every decision."""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib import resources
from typing import Any, TypeVar

import anyio
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import RedisClusterException, RedisError

from tokenpair import (
    ConfigurationError,
    FamilyState,
    NewFamily,
    Rotation,
    RotationResult,
    RotationStatus,
    Store,
    StoreError,
    TokenPairError,
)

__all__ = ["RedisStore"]

_T = TypeVar("_T")

#: Hex digits of SHA-256(subject) that place a subject's keys in one hash slot.
#: 65,536 tags: enough to spread load over any cluster, and every tag is
#: shared by many subjects, so a family id says next to nothing about whose
#: it is.
TAG_LENGTH = 4

#: Keyed by the status both as the bytes a raw client returns and as the text
#: a decoding client returns, so that a reply needs no decoding to be read.
_STATUSES: dict[bytes | str, RotationStatus] = {
    **{status.value: status for status in RotationStatus},
    **{status.value.encode(): status for status in RotationStatus},
}
_RENEWED = (RotationStatus.ROTATED, RotationStatus.RETRIED)


def subject_tag(subject: str) -> str:
    """The hash tag of ``subject``'s keys and family ids."""
    return hashlib.sha256(subject.encode()).hexdigest()[:TAG_LENGTH]


def _load(name: str) -> str:
    return resources.files(__package__).joinpath("lua", name).read_text("utf-8")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _float(value: float) -> str:
    # repr is the shortest string that reads back as the same double, in
    # Python and in Lua's tonumber alike.
    return repr(float(value))


def _milliseconds(seconds: float) -> str:
    return str(max(1, math.ceil(seconds * 1000)))


def _rotation_reply(
    reply: bytes | str,
) -> tuple[RotationStatus, str | None, str | None, float | None]:
    """Take apart rotate.lua's reply: the status, then, for a family that
    exists, its idle expiry and the subject's length in bytes, each ended by
    a newline, followed by the subject and the user data."""
    # A decoding client hands back text; the subject's length is in bytes.
    raw = reply if isinstance(reply, bytes) else reply.encode()
    status_end = raw.index(b"\n")
    status = _STATUSES[raw[:status_end]]
    if status_end + 1 == len(raw):
        return status, None, None, None
    expiry_end = raw.index(b"\n", status_end + 1)
    length_end = raw.index(b"\n", expiry_end + 1)
    subject_end = length_end + 1 + int(raw[expiry_end + 1 : length_end])
    return (
        status,
        raw[length_end + 1 : subject_end].decode(),
        raw[subject_end:].decode(),
        float(raw[status_end + 1 : expiry_end]),
    )


def _require_asyncio() -> None:
    # redis.asyncio needs a running asyncio loop; under trio it fails deep
    # inside the connection code with a RuntimeError that says nothing useful.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise ConfigurationError(
            "RedisStore runs on asyncio only (redis-py's asyncio client needs "
            "an asyncio event loop); use it under asyncio or anyio's asyncio "
            "backend"
        ) from None


class RedisStore(Store):
    """Keeps families in Redis or a Redis Cluster (redis-py's asyncio client).

    Each family is one hash that expires with its current token; every
    decision is one Lua script run by ``EVALSHA``. A subject's families, its
    index and its cut-off share one hash slot, so :meth:`revoke_subject` is
    one atomic script in a cluster too.

    ``client`` is a :class:`redis.asyncio.Redis` (standalone or managed by
    Sentinel) or a :class:`redis.asyncio.cluster.RedisCluster`; the store
    never closes it. :func:`~tokenpair_redis.store_from_url` makes a store
    that owns its client. Every key starts with ``prefix``.

    The store runs on asyncio only (including anyio on its asyncio backend):
    under trio every call is a :class:`~tokenpair.ConfigurationError`, raised
    before anything connects.
    """

    def __init__(
        self, client: Redis | RedisCluster, *, prefix: str = "tokenpair:"
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._cluster = isinstance(client, RedisCluster)
        self._owns_client = False
        # Set for stores made from a URL on a cluster, whose client fails at
        # once when a node's pool is exhausted instead of waiting.
        self._permits: anyio.Semaphore | None = None
        self._permit_timeout = 0.0
        self._create = client.register_script(_load("create.lua"))
        self._rotate = client.register_script(_load("rotate.lua"))
        self._revoke_family = client.register_script(_load("revoke_family.lua"))
        self._revoke_subject = client.register_script(_load("revoke_subject.lua"))

    def __repr__(self) -> str:
        kind = "cluster" if self._cluster else "standalone"
        return f"RedisStore({kind}, prefix={self._prefix!r})"

    @property
    def client(self) -> Redis | RedisCluster:
        """The redis-py client the store talks through."""
        return self._client

    @property
    def prefix(self) -> str:
        """What every key of this store starts with."""
        return self._prefix

    def _adopt(self, *, max_waiting: int | None, wait_timeout: float) -> None:
        """Take ownership of the client (closed by :meth:`aclose`) and, for a
        cluster, let no more than ``max_waiting`` calls use it at once."""
        self._owns_client = True
        if max_waiting is not None:
            self._permits = anyio.Semaphore(max_waiting)
            self._permit_timeout = wait_timeout

    # -- keys ------------------------------------------------------------

    def family_key(self, family_id: str) -> str:
        """The key of a family's hash."""
        return f"{self._prefix}{{{family_id[:TAG_LENGTH]}}}:f:{family_id}"

    def _subject_keys(self, subject: str) -> tuple[str, str]:
        digest = hashlib.sha256(subject.encode()).hexdigest()
        base = f"{self._prefix}{{{digest[:TAG_LENGTH]}}}"
        return f"{base}:s:{digest}", f"{base}:c:{digest}"

    def new_family_id(self, subject: str) -> str:
        """A random id that starts with the subject's hash tag."""
        return subject_tag(subject) + secrets.token_urlsafe(16)

    # -- calls -----------------------------------------------------------

    async def _call(self, action: str, call: Callable[[], Awaitable[_T]]) -> _T:
        _require_asyncio()
        try:
            if self._permits is None:
                return await call()
            try:
                with anyio.fail_after(self._permit_timeout):
                    await self._permits.acquire()
            except TimeoutError as exc:
                raise StoreError(
                    f"the Redis store could not {action}: no connection became "
                    f"free within {self._permit_timeout:g} s"
                ) from exc
            try:
                return await call()
            finally:
                self._permits.release()
        except TokenPairError:
            raise
        except Exception as exc:
            # Besides its own errors, redis-py can fail with AttributeError or
            # the like while a cluster node's connections are torn down under
            # concurrent calls: every failure of the backend is a StoreError.
            raise StoreError(
                f"the Redis store could not {action} ({type(exc).__name__})"
            ) from exc

    async def _run(
        self,
        action: str,
        script: AsyncScript,
        keys: Sequence[str],
        args: Sequence[str],
    ) -> Any:
        # AsyncScript sends EVALSHA and, only if the server answers NOSCRIPT
        # (after SCRIPT FLUSH, a restart or a failover), loads the script and
        # sends it again; on a cluster, SCRIPT LOAD reaches every primary.
        return await self._call(action, lambda: script(keys=keys, args=args))

    async def setup(self) -> None:
        """Load the scripts, so that the first calls need no NOSCRIPT
        round trip."""
        await self._call("load its scripts", self._load_scripts)

    async def _load_scripts(self) -> None:
        for script in (
            self._create,
            self._rotate,
            self._revoke_family,
            self._revoke_subject,
        ):
            script.sha = _text(await self._client.script_load(script.script))

    async def aclose(self) -> None:
        """Close the client if the store made it."""
        _require_asyncio()
        if self._owns_client:
            self._owns_client = False
            try:
                await self._client.aclose()
            except (RedisError, RedisClusterException, OSError) as exc:
                raise StoreError("the Redis store could not close its client") from exc

    # -- the Store interface ----------------------------------------------

    async def create_family(self, family: NewFamily) -> None:
        index, cutoff = self._subject_keys(family.subject)
        if self._cluster and family.family_id[:TAG_LENGTH] != subject_tag(
            family.subject
        ):
            raise StoreError(
                "in a Redis Cluster, family ids must come from "
                "RedisStore.new_family_id, which places them in their "
                "subject's hash slot"
            )
        reply = await self._run(
            "create a family",
            self._create,
            [self.family_key(family.family_id), index, cutoff],
            [
                family.subject,
                family.user_data,
                family.token,
                _float(family.created_at),
                _float(family.expires_at),
                ""
                if family.family_expires_at is None
                else _float(family.family_expires_at),
                _milliseconds(family.expires_at - family.created_at),
                secrets.token_hex(8),
            ],
        )
        if _text(reply) != "ok":
            raise StoreError("a family with this id exists already")

    async def rotate(self, rotation: Rotation) -> RotationResult:
        successor = rotation.successor
        now = rotation.now
        args = [
            rotation.presented,
            "" if successor is None else successor,
            "0" if successor is None else "1",
            _float(now),
            _float(now + rotation.refresh_ttl),
            _float(rotation.reuse_grace),
            secrets.token_hex(8),
        ]
        if rotation.user_data is not None:
            args.append(rotation.user_data)
        reply = await self._run(
            "rotate a refresh token",
            self._rotate,
            [self.family_key(rotation.family_id)],
            args,
        )
        status, subject, user_data, expires_at = _rotation_reply(reply)
        if status is RotationStatus.REUSED:
            return RotationResult(status, subject)
        if status not in _RENEWED:
            return RotationResult(status)
        if successor is None:
            return RotationResult(status, subject, user_data)
        return RotationResult(status, subject, user_data, expires_at)

    async def get_family(self, family_id: str) -> FamilyState | None:
        key = self.family_key(family_id)
        raw: Mapping[Any, Any] = await self._call(
            "read a family", lambda: self._client.hgetall(key)
        )
        if not raw:
            return None
        fields = {_text(name): _text(value) for name, value in raw.items()}

        def optional(name: str) -> float | None:
            value = fields.get(name)
            return None if value is None else float(value)

        return FamilyState(
            family_id=family_id,
            subject=fields["s"],
            user_data=fields["u"],
            current=fields["c"],
            previous=fields.get("p"),
            created_at=float(fields["ca"]),
            rotated_at=optional("ra"),
            expires_at=float(fields["e"]),
            family_expires_at=optional("fe"),
            revoked_at=optional("r"),
            generation=int(fields["g"]),
        )

    async def revoke_family(self, family_id: str, now: float) -> None:
        await self._run(
            "revoke a family",
            self._revoke_family,
            [self.family_key(family_id)],
            [_float(now)],
        )

    async def revoke_subject(
        self, subject: str, now: float, remember_until: float
    ) -> int:
        index, cutoff = self._subject_keys(subject)
        lifetime = _milliseconds(remember_until - now) if remember_until > now else ""
        reply = await self._run(
            "revoke a subject's families",
            self._revoke_subject,
            [index, cutoff],
            [_float(now), _float(remember_until), lifetime, secrets.token_hex(8)],
        )
        return int(reply)

    async def subject_revoked_at(self, subject: str, now: float) -> float | None:
        _, cutoff = self._subject_keys(subject)
        at, until = await self._call(
            "read a subject's cut-off",
            lambda: self._client.hmget(cutoff, ["at", "until"]),
        )
        if at is None or until is None or now >= float(until):
            return None
        return float(at)
