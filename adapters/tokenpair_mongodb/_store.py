from __future__ import annotations

import contextlib
import warnings
from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

import anyio
from bson.errors import BSONError
from pymongo import ASCENDING, AsyncMongoClient, ReadPreference, ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from tokenpair import (
    ConfigurationError,
    FamilyState,
    NewFamily,
    Rotation,
    RotationResult,
    RotationStatus,
    Store,
    StoreError,
)

from ._url import check_collection_name, split_url

#: How long a store made from a URL waits for a reachable server, unless the
#: URL sets ``serverSelectionTimeoutMS`` itself.
DEFAULT_SERVER_SELECTION_TIMEOUT_MS = 5_000

__all__ = ["AsyncCollectionLike", "MongoStore", "store_from_url"]

# A rotation that found nothing to rotate is classified by a read and, for
# reuse, a conditional revoke. Either can be overtaken by a concurrent write,
# which sends the rotation round again; after this many rounds the family is
# changing faster than it can be read and the call gives up.
_MAX_ROUNDS = 4

_LATEST = datetime.max.replace(tzinfo=UTC)
_EARLIEST = datetime.min.replace(tzinfo=UTC)


class AsyncCollectionLike(Protocol):
    """The part of an asyncio MongoDB collection that :class:`MongoStore`
    uses. PyMongo's ``AsyncCollection`` and Motor's
    ``AsyncIOMotorCollection`` both fit."""

    @property
    def name(self) -> str: ...

    @property
    def database(self) -> Any: ...

    @property
    def codec_options(self) -> Any: ...

    def with_options(self, *args: Any, **kwargs: Any) -> Any: ...

    def create_index(self, *args: Any, **kwargs: Any) -> Awaitable[Any]: ...

    def insert_one(self, *args: Any, **kwargs: Any) -> Awaitable[Any]: ...

    def find_one(self, *args: Any, **kwargs: Any) -> Awaitable[Any]: ...

    def find_one_and_update(self, *args: Any, **kwargs: Any) -> Awaitable[Any]: ...

    def update_one(self, *args: Any, **kwargs: Any) -> Awaitable[Any]: ...

    def update_many(self, *args: Any, **kwargs: Any) -> Awaitable[Any]: ...


class MongoStore(Store):
    """Keeps each family in one MongoDB document, ``_id`` being the family id.

    ``collection`` is an asyncio collection from PyMongo
    (``pymongo.AsyncMongoClient``) or Motor
    (``motor.motor_asyncio.AsyncIOMotorClient``); the store never closes its
    client. Subject cut-offs go to ``cutoffs_collection``, by default the
    collection named ``<collection>_cutoffs`` in the same database.

    A rotation is one ``findAndModify`` on one document whose filter matches
    only a live family holding the presented token (current, or rotated last
    within the grace window): the server's per-document atomicity makes it a
    compare-and-swap. Times are the manager's float seconds, compared as
    stored; a second field, ``expire_at``, holds the matching wall-clock time
    for a TTL index, so that MongoDB removes what has expired by itself.
    Indexes are created by :meth:`setup`, or on first use.
    """

    def __init__(
        self,
        collection: AsyncCollectionLike,
        *,
        cutoffs_collection: AsyncCollectionLike | None = None,
    ) -> None:
        check_collection_name(collection.name)
        if cutoffs_collection is not None:
            check_collection_name(cutoffs_collection.name)
        else:
            cutoffs_collection = cast(
                AsyncCollectionLike,
                collection.database[f"{collection.name}_cutoffs"],
            )
        self._families = _own_options(collection)
        self._cutoffs = _own_options(cutoffs_collection)
        self._namespace = f"{collection.database.name}.{collection.name}"
        self._owned_client: Any = None
        self._ready = False
        self._setup_lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"MongoStore({self._namespace!r})"

    async def setup(self) -> None:
        """Create the TTL and subject indexes; creating them again is a
        no-op, so every process may call this at start-up."""
        async with self._setup_lock:
            if self._ready:
                return
            with _translated("create indexes"):
                await self._families.create_index(
                    [("expire_at", ASCENDING)], expireAfterSeconds=0
                )
                await self._families.create_index([("subject", ASCENDING)])
                await self._cutoffs.create_index(
                    [("expire_at", ASCENDING)], expireAfterSeconds=0
                )
            self._ready = True

    async def aclose(self) -> None:
        client, self._owned_client = self._owned_client, None
        if client is not None:
            await client.close()

    async def create_family(self, family: NewFamily) -> None:
        await self._ensure_setup()
        document = {
            "_id": family.family_id,
            "subject": family.subject,
            "user_data": family.user_data,
            "current": family.token,
            "previous": None,
            "created_at": family.created_at,
            "rotated_at": None,
            "expires_at": family.expires_at,
            "family_expires_at": family.family_expires_at,
            "revoked_at": None,
            "generation": 0,
            "retries": 0,
            "expire_at": _wall_time(family.expires_at, family.created_at),
        }
        with _translated("create a family"):
            try:
                await self._families.insert_one(document)
            except DuplicateKeyError as exc:
                raise StoreError("a family with this id exists already") from exc
            # A login racing revoke_subject may land after its sweep; the
            # cut-off was written before the sweep, so it is visible here.
            cutoff = await self._cutoffs.find_one({"_id": family.subject})
            if (
                cutoff is not None
                and family.created_at <= cutoff["revoked_at"]
                and cutoff["revoked_at"] < cutoff["remember_until"]
            ):
                await self._families.update_one(
                    {"_id": family.family_id, "revoked_at": None},
                    {"$set": {"revoked_at": cutoff["revoked_at"]}},
                )

    async def rotate(self, rotation: Rotation) -> RotationResult:
        await self._ensure_setup()
        with _translated("rotate"):
            for _ in range(_MAX_ROUNDS):
                result = await self._try_rotate(rotation)
                if result is not None:
                    return result
        raise StoreError("the family kept changing while being rotated")

    async def _try_rotate(self, rotation: Rotation) -> RotationResult | None:
        """One compare-and-swap, then, if it missed, classify the miss.

        ``None`` means a concurrent write made the classification stale.
        """
        after = await self._compare_and_rotate(rotation)
        if after is not None:
            if rotation.successor is None:
                return RotationResult(
                    RotationStatus.ROTATED, after["subject"], after["user_data"]
                )
            # A rotation resets the retry count and a retry raises it: after
            # the update that is the one way to tell them apart, since a
            # retry at the rotation's own instant leaves the same times.
            retried = after["retries"] > 0
            return RotationResult(
                RotationStatus.RETRIED if retried else RotationStatus.ROTATED,
                after["subject"],
                after["user_data"],
                float(after["expires_at"]),
            )

        now = rotation.now
        found = await self._families.find_one({"_id": rotation.family_id})
        if found is None:
            return RotationResult(RotationStatus.UNKNOWN)
        if found["revoked_at"] is not None:
            return RotationResult(RotationStatus.REVOKED)
        if now >= found["expires_at"]:
            return RotationResult(RotationStatus.EXPIRED)
        if found["current"] == rotation.presented or (
            rotation.successor is not None
            and rotation.reuse_grace > 0
            and found["previous"] == rotation.presented
            and found["rotated_at"] is not None
            and now < found["rotated_at"] + rotation.reuse_grace
        ):
            # Rotatable after all: the family was written between the swap
            # and the read (it was being created, say). Swap again.
            return None
        revoked = await self._families.update_one(
            {
                "_id": rotation.family_id,
                "revoked_at": None,
                "expires_at": {"$gt": now},
                "current": {"$ne": rotation.presented},
            },
            {"$set": {"revoked_at": now}},
        )
        if revoked.matched_count == 0:
            return None
        return RotationResult(RotationStatus.REUSED, found["subject"])

    async def _compare_and_rotate(self, rotation: Rotation) -> dict[str, Any] | None:
        """Cases 4 and 5 of :meth:`Store.rotate` as one atomic update; the
        document after it, or ``None`` if the family was in neither case."""
        now = rotation.now
        presented = {"$literal": rotation.presented}
        live: dict[str, Any] = {
            "_id": rotation.family_id,
            "revoked_at": None,
            "expires_at": {"$gt": now},
        }
        if rotation.successor is None:
            return cast(
                "dict[str, Any] | None",
                await self._families.find_one_and_update(
                    {**live, "current": rotation.presented},
                    {"$set": {"revoked_at": now}},
                    return_document=ReturnDocument.AFTER,
                ),
            )

        is_current = {"$eq": ["$current", presented]}
        rotatable: dict[str, Any] = is_current
        if rotation.reuse_grace > 0:
            # $expr rather than a plain "rotated_at > now - grace" filter:
            # the server then adds exactly as the rule is written, so
            # rounding at the edge of the window agrees with every other
            # store.
            within_grace = {
                "$and": [
                    {"$eq": ["$previous", presented]},
                    {"$lt": [now, {"$add": ["$rotated_at", rotation.reuse_grace]}]},
                ]
            }
            rotatable = {"$or": [is_current, within_grace]}
        changes: dict[str, Any] = {
            "previous": {"$cond": [is_current, "$current", "$previous"]},
            "rotated_at": {"$cond": [is_current, now, "$rotated_at"]},
            "retries": {
                "$cond": [is_current, 0, {"$add": [{"$ifNull": ["$retries", 0]}, 1]}]
            },
            "current": {"$literal": rotation.successor},
            # $min skips a null or missing family_expires_at.
            "expires_at": {"$min": [now + rotation.refresh_ttl, "$family_expires_at"]},
            "generation": {"$add": ["$generation", 1]},
        }
        if rotation.user_data is not None:
            changes["user_data"] = {"$literal": rotation.user_data}
        # The TTL field follows expires_at, which the server has just chosen:
        # the wall-clock time now plus the lifetime left on the manager's
        # clock, in milliseconds as date arithmetic counts.
        expire_at = {
            "$add": [
                datetime.now(UTC),
                {"$multiply": [{"$subtract": ["$expires_at", now]}, 1000]},
            ]
        }
        return cast(
            "dict[str, Any] | None",
            await self._families.find_one_and_update(
                {**live, "$expr": rotatable},
                [{"$set": changes}, {"$set": {"expire_at": expire_at}}],
                return_document=ReturnDocument.AFTER,
            ),
        )

    async def get_family(self, family_id: str) -> FamilyState | None:
        await self._ensure_setup()
        with _translated("read a family"):
            found = await self._families.find_one({"_id": family_id})
        if found is None:
            return None
        return FamilyState(
            family_id=family_id,
            subject=found["subject"],
            user_data=found["user_data"],
            current=found["current"],
            previous=found["previous"],
            created_at=float(found["created_at"]),
            rotated_at=_float_or_none(found["rotated_at"]),
            expires_at=float(found["expires_at"]),
            family_expires_at=_float_or_none(found["family_expires_at"]),
            revoked_at=_float_or_none(found["revoked_at"]),
            generation=int(found["generation"]),
        )

    async def native_expiry(self, family_id: str) -> datetime | None:
        """When MongoDB's TTL monitor may remove the family at the earliest,
        as an aware UTC datetime, or ``None`` for no such family.

        The monitor runs about once a minute, so a record may outlive this
        by that much; decisions never depend on it.
        """
        await self._ensure_setup()
        with _translated("read a family"):
            found = await self._families.find_one(
                {"_id": family_id}, projection={"expire_at": True}
            )
        if found is None:
            return None
        return _aware_utc(found["expire_at"])

    async def revoke_family(self, family_id: str, now: float) -> None:
        await self._ensure_setup()
        with _translated("revoke a family"):
            await self._families.update_one(
                {"_id": family_id, "revoked_at": None},
                {"$set": {"revoked_at": now}},
            )

    async def revoke_subject(
        self, subject: str, now: float, remember_until: float
    ) -> int:
        await self._ensure_setup()
        cutoff = {
            "revoked_at": now,
            "remember_until": remember_until,
            "expire_at": _wall_time(remember_until, now),
        }
        with _translated("revoke a subject"):
            # The cut-off goes first: create_family reads it after its
            # insert, so a login whose insert lands after the sweep below
            # still arrives revoked.
            try:
                await self._cutoffs.update_one(
                    {"_id": subject}, {"$set": cutoff}, upsert=True
                )
            except DuplicateKeyError:
                # Two upserts of one new _id raced; the document now exists.
                await self._cutoffs.update_one({"_id": subject}, {"$set": cutoff})
            result = await self._families.update_many(
                {"subject": subject, "revoked_at": None, "expires_at": {"$gt": now}},
                {"$set": {"revoked_at": now}},
            )
        return int(result.modified_count)

    async def subject_revoked_at(self, subject: str, now: float) -> float | None:
        await self._ensure_setup()
        with _translated("read a subject's cut-off"):
            found = await self._cutoffs.find_one({"_id": subject})
        if found is None or now >= found["remember_until"]:
            return None
        return float(found["revoked_at"])

    async def _ensure_setup(self) -> None:
        if not self._ready:
            await self.setup()


def store_from_url(url: str) -> MongoStore:
    """Make a :class:`MongoStore` from ``mongodb://host/db?collection=name``
    (or ``mongodb+srv://``), without connecting yet.

    ``collection`` (default ``tokenpair_families``) is the store's own option
    and is removed before the URL reaches the driver; every other option is
    PyMongo's. With no database in the path, families go to ``tokenpair``
    and the URL is passed on unchanged, so authentication still defaults to
    ``admin``. The store owns its ``AsyncMongoClient`` and closes it in
    :meth:`~MongoStore.aclose`.
    """
    parts = split_url(url)
    options: dict[str, Any] = {}
    if "serverselectiontimeoutms" not in parts.driver_url.lower():
        # PyMongo waits 30 s for a server by default; a store that is down
        # should fail a request sooner than a client gives up on it.
        options["serverSelectionTimeoutMS"] = DEFAULT_SERVER_SELECTION_TIMEOUT_MS
    try:
        with warnings.catch_warnings():
            # PyMongo only warns about an option it does not understand (a
            # misspelt ``tls=yes`` among them) and then ignores it.
            warnings.simplefilter("error")
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                parts.driver_url, **options
            )
            collection = client[parts.database][parts.collection]
    except (PyMongoError, ValueError, TypeError, Warning) as exc:
        # The driver's message may quote the URL, credentials included.
        raise ConfigurationError(
            f"the MongoDB store URL is not valid ({type(exc).__name__})"
        ) from None
    store = MongoStore(collection)
    store._owned_client = client
    return store


def _own_options(collection: AsyncCollectionLike) -> AsyncCollectionLike:
    """The same collection, read as this store needs whatever the client's
    settings: plain dicts, aware UTC datetimes, and reads from the primary
    (a stale secondary could make a rotation misjudge reuse)."""
    codec_options = collection.codec_options.with_options(
        document_class=dict, tz_aware=True, tzinfo=UTC
    )
    return cast(
        AsyncCollectionLike,
        collection.with_options(
            codec_options=codec_options, read_preference=ReadPreference.PRIMARY
        ),
    )


@contextlib.contextmanager
def _translated(action: str) -> Iterator[None]:
    # The driver's message is left in the chained cause: it can quote the
    # filter, and the filter holds token digests.
    try:
        yield
    except (PyMongoError, BSONError) as exc:
        raise StoreError(f"MongoDB failed to {action} ({type(exc).__name__})") from exc


def _wall_time(at: float, now: float) -> datetime:
    """The wall-clock time ``at - now`` seconds from this moment.

    The manager's clock may be offset from the wall clock (or stand still in
    tests); the TTL index only ever sees the wall clock, so what it gets is
    the lifetime left, not the manager's absolute time.
    """
    try:
        return datetime.now(UTC) + timedelta(seconds=at - now)
    except OverflowError:
        return _LATEST if at > now else _EARLIEST


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)
