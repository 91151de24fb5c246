"""MongoStore against a MongoDB wire-protocol server, through both asyncio
clients: PyMongo's ``AsyncMongoClient`` and Motor.

The server is a real ``mongod`` when ``TOKENPAIR_MONGODB_URL`` names one, and
mongoeco's wire server otherwise (see ``tests/support/mongo_server.py``).
"""

from __future__ import annotations

import gc
import math
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import AsyncMongoClient, WriteConcern
from pymongo.errors import (
    DuplicateKeyError,
    InvalidOperation,
    OperationFailure,
    ServerSelectionTimeoutError,
    WriteConcernError,
)

from tokenpair import (
    NewFamily,
    Rotation,
    RotationResult,
    RotationStatus,
    StoreError,
)
from tokenpair_mongodb import MongoStore, store_from_url
from tokenpair_mongodb._url import split_url

pytestmark = pytest.mark.anyio

DATABASE = "tokenpair_tests"
FAMILY = "family-0000000001"
SUBJECT = "alice"
T0 = 1_800_000_000.25
TTL = 3600.0
GRACE = 30.0

Client = Any
ClientFactory = Callable[..., Client]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["pymongo", "motor"])
def client_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _client(kind: str, url: str, **options: Any) -> Client:
    if kind == "pymongo":
        return AsyncMongoClient(url, **options)
    return AsyncIOMotorClient(url, **options)


async def _close(client: Client) -> None:
    if isinstance(client, AsyncMongoClient):
        await client.close()
    else:
        client.close()


@pytest.fixture
async def client_factory(
    client_kind: str,
    mongodb_url: str,
) -> AsyncIterator[ClientFactory]:
    clients: list[Client] = []

    def make(**options: Any) -> Client:
        client = _client(client_kind, mongodb_url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await _close(client)


@pytest.fixture
async def collection(client_factory: ClientFactory) -> AsyncIterator[Any]:
    """A collection no other test uses, dropped (with its cut-offs) after."""
    client = client_factory()
    families = client[DATABASE][f"families_{uuid.uuid4().hex}"]
    yield families
    await families.drop()
    await client[DATABASE][f"{families.name}_cutoffs"].drop()


@pytest.fixture
async def store(collection: Any) -> MongoStore:
    store = MongoStore(collection)
    await store.setup()
    return store


def new_family(
    *,
    family_id: str = FAMILY,
    subject: str = SUBJECT,
    token: str = "digest-0",  # noqa: S107 - a made-up digest
    created_at: float = T0,
    lifetime: float = TTL,
    family_expires_at: float | None = None,
) -> NewFamily:
    return NewFamily(
        family_id=family_id,
        subject=subject,
        user_data='{"role": "admin"}',
        token=token,
        created_at=created_at,
        expires_at=created_at + lifetime,
        family_expires_at=family_expires_at,
    )


def rotation(
    presented: str,
    successor: str | None,
    now: float,
    *,
    reuse_grace: float = GRACE,
    refresh_ttl: float = TTL,
    user_data: str | None = None,
    family_id: str = FAMILY,
) -> Rotation:
    return Rotation(
        family_id=family_id,
        presented=presented,
        successor=successor,
        now=now,
        refresh_ttl=refresh_ttl,
        reuse_grace=reuse_grace,
        user_data=user_data,
    )


async def raw(collection: Any, family_id: str = FAMILY) -> dict[str, Any] | None:
    found: dict[str, Any] | None = await collection.find_one({"_id": family_id})
    return found


# -- case 1: unknown ---------------------------------------------------------


async def test_unknown_family(store: MongoStore, collection: Any) -> None:
    """A family that was never created is UNKNOWN and nothing is written."""
    result = await store.rotate(rotation("digest-0", "digest-1", T0))

    assert result == RotationResult(RotationStatus.UNKNOWN)
    assert await collection.count_documents({}) == 0


# -- case 2: revoked ---------------------------------------------------------


async def test_revoked_family_is_reported_and_left_alone(
    store: MongoStore, collection: Any
) -> None:
    """Even the current token of a revoked family is refused, with no write."""
    await store.create_family(new_family())
    await store.revoke_family(FAMILY, T0 + 1)
    before = await raw(collection)

    result = await store.rotate(rotation("digest-0", "digest-1", T0 + 2))

    assert result == RotationResult(RotationStatus.REVOKED)
    assert await raw(collection) == before


# -- case 3: expired ---------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "status"),
    [
        (math.nextafter(T0 + TTL, 0), RotationStatus.ROTATED),
        (T0 + TTL, RotationStatus.EXPIRED),
        (T0 + TTL + 1, RotationStatus.EXPIRED),
    ],
    ids=["just-before", "at-expiry", "after"],
)
async def test_expiry_boundary(
    store: MongoStore, collection: Any, now: float, status: RotationStatus
) -> None:
    """A token is expired from ``expires_at`` on, not a moment later."""
    await store.create_family(new_family())
    before = await raw(collection)

    result = await store.rotate(rotation("digest-0", "digest-1", now))

    assert result.status is status
    if status is RotationStatus.EXPIRED:
        assert await raw(collection) == before


async def test_expired_beats_reuse(store: MongoStore, collection: Any) -> None:
    """An old token of an expired family is EXPIRED, and revokes nothing."""
    await store.create_family(new_family())
    await store.rotate(rotation("digest-0", "digest-1", T0 + 10))
    before = await raw(collection)

    result = await store.rotate(rotation("digest-0", "digest-2", T0 + 10 + TTL))

    assert result.status is RotationStatus.EXPIRED
    assert await raw(collection) == before


# -- case 4: rotated ---------------------------------------------------------


async def test_rotation_moves_current_to_previous(store: MongoStore) -> None:
    """The current token is consumed, its successor stored and the idle
    expiry renewed; user data stays when none is given."""
    await store.create_family(new_family())

    result = await store.rotate(rotation("digest-0", "digest-1", T0 + 10))

    assert result == RotationResult(
        RotationStatus.ROTATED, SUBJECT, '{"role": "admin"}', T0 + 10 + TTL
    )
    state = await store.get_family(FAMILY)
    assert state is not None
    assert (state.current, state.previous) == ("digest-1", "digest-0")
    assert (state.rotated_at, state.expires_at) == (T0 + 10, T0 + 10 + TTL)
    assert state.generation == 1
    assert state.user_data == '{"role": "admin"}'
    assert state.revoked_at is None


async def test_rotation_is_capped_by_family_expiry(store: MongoStore) -> None:
    """A family's end caps every successor's expiry."""
    cap = T0 + 100
    await store.create_family(new_family(lifetime=50, family_expires_at=cap))

    result = await store.rotate(rotation("digest-0", "digest-1", T0 + 40))

    assert result.expires_at == cap
    state = await store.get_family(FAMILY)
    assert state is not None
    assert (state.expires_at, state.family_expires_at) == (cap, cap)


async def test_rotation_replaces_user_data(store: MongoStore) -> None:
    """User data given with a rotation replaces the stored data, verbatim."""
    await store.create_family(new_family())
    data = '{"$set": "not an operator", "n": 1}'

    result = await store.rotate(rotation("digest-0", "$digest", T0 + 1, user_data=data))

    assert result.user_data == data
    state = await store.get_family(FAMILY)
    assert state is not None
    assert (state.user_data, state.current) == (data, "$digest")


async def test_rotation_without_successor_retires_family(
    store: MongoStore,
) -> None:
    """With no successor the current token ends the family (logout); no
    successor is stored, so generation and user data stay."""
    await store.create_family(new_family())

    result = await store.rotate(rotation("digest-0", None, T0 + 5, user_data="{}"))

    assert result == RotationResult(
        RotationStatus.ROTATED, SUBJECT, '{"role": "admin"}'
    )
    state = await store.get_family(FAMILY)
    assert state is not None
    assert (state.revoked_at, state.generation) == (T0 + 5, 0)
    assert state.user_data == '{"role": "admin"}'
    assert (state.current, state.expires_at) == ("digest-0", T0 + TTL)
    again = await store.rotate(rotation("digest-0", "digest-1", T0 + 6))
    assert again.status is RotationStatus.REVOKED


# -- case 5: retried ---------------------------------------------------------


async def test_retry_within_grace_replaces_only_current(store: MongoStore) -> None:
    """The token rotated last, presented again in the window, gets a new
    successor; previous and rotated_at stay, so the window does not move."""
    await store.create_family(new_family())
    await store.rotate(rotation("digest-0", "digest-1", T0 + 10))

    result = await store.rotate(
        rotation("digest-0", "digest-2", T0 + 20, user_data='{"v": 2}')
    )

    assert result == RotationResult(
        RotationStatus.RETRIED, SUBJECT, '{"v": 2}', T0 + 20 + TTL
    )
    state = await store.get_family(FAMILY)
    assert state is not None
    assert (state.current, state.previous) == ("digest-2", "digest-0")
    assert (state.rotated_at, state.expires_at) == (T0 + 10, T0 + 20 + TTL)
    assert state.generation == 2
    assert state.revoked_at is None


async def test_token_replaced_by_a_retry_is_reuse(store: MongoStore) -> None:
    """The successor a retry replaced is neither current nor previous."""
    await store.create_family(new_family())
    await store.rotate(rotation("digest-0", "digest-1", T0 + 10))
    await store.rotate(rotation("digest-0", "digest-2", T0 + 11))

    result = await store.rotate(rotation("digest-1", "digest-3", T0 + 12))

    assert result.status is RotationStatus.REUSED


@pytest.mark.parametrize(
    ("rotated_at", "grace", "now", "status"),
    [
        (T0 + 10, GRACE, math.nextafter(T0 + 10 + GRACE, 0), RotationStatus.RETRIED),
        (T0 + 10, GRACE, T0 + 10 + GRACE, RotationStatus.REUSED),
        # 0.1 + 0.4 == 0.5, but 0.5 - 0.4 < 0.1: a filter written as
        # "rotated_at > now - grace" would retry where the rule says reuse.
        (0.1, 0.4, 0.5, RotationStatus.REUSED),
        (0.1, 0.4, math.nextafter(0.5, 0), RotationStatus.RETRIED),
        (T0 + 10, 0.0, T0 + 10, RotationStatus.REUSED),
        # A clock reading before the rotation is inside any window but none.
        (T0 + 10, 0.0, T0 + 9.999, RotationStatus.REUSED),
        (T0 + 10, GRACE, T0 + 9.999, RotationStatus.RETRIED),
    ],
    ids=[
        "inside",
        "at-edge",
        "rounding-at-edge",
        "inside-rounding",
        "zero-grace",
        "zero-grace-earlier-clock",
        "earlier-clock",
    ],
)
async def test_grace_window_boundary(
    store: MongoStore,
    rotated_at: float,
    grace: float,
    now: float,
    status: RotationStatus,
) -> None:
    """Retry while ``reuse_grace > 0`` and ``now < rotated_at + reuse_grace``,
    computed exactly so."""
    assert (grace > 0 and now < rotated_at + grace) is (
        status is RotationStatus.RETRIED
    )
    await store.create_family(new_family(created_at=rotated_at - 0.1))
    await store.rotate(rotation("digest-0", "digest-1", rotated_at))

    result = await store.rotate(
        rotation("digest-0", "digest-2", now, reuse_grace=grace)
    )

    assert result.status is status


# -- case 6: reused ----------------------------------------------------------


async def test_older_token_revokes_family(store: MongoStore) -> None:
    """A token from before the last rotation revokes the whole family, so
    the current holder is refused too."""
    await store.create_family(new_family())
    await store.rotate(rotation("digest-0", "digest-1", T0 + 1))
    await store.rotate(rotation("digest-1", "digest-2", T0 + 2))

    result = await store.rotate(rotation("digest-0", "digest-9", T0 + 3))

    assert (result.status, result.subject) == (RotationStatus.REUSED, SUBJECT)
    state = await store.get_family(FAMILY)
    assert state is not None
    assert (state.revoked_at, state.current, state.generation) == (
        T0 + 3,
        "digest-2",
        2,
    )
    current = await store.rotate(rotation("digest-2", "digest-3", T0 + 4))
    assert current.status is RotationStatus.REVOKED


async def test_previous_token_after_grace_is_reuse(store: MongoStore) -> None:
    await store.create_family(new_family())
    await store.rotate(rotation("digest-0", "digest-1", T0 + 1))

    result = await store.rotate(rotation("digest-0", "digest-2", T0 + 1 + GRACE))

    assert result.status is RotationStatus.REUSED


async def test_previous_token_without_successor_is_reuse(store: MongoStore) -> None:
    """Grace exists to hand out a successor again; retiring with the old
    token is not a retry."""
    await store.create_family(new_family())
    await store.rotate(rotation("digest-0", "digest-1", T0 + 1))

    result = await store.rotate(rotation("digest-0", None, T0 + 2))

    assert result.status is RotationStatus.REUSED


async def test_unknown_digest_is_reuse(store: MongoStore) -> None:
    await store.create_family(new_family())

    result = await store.rotate(rotation("digest-x", "digest-1", T0 + 1))

    assert result.status is RotationStatus.REUSED
    assert (await store.rotate(rotation("digest-0", "d", T0 + 2))).status is (
        RotationStatus.REVOKED
    )


# -- atomicity ---------------------------------------------------------------


async def _rotate_concurrently(
    store: MongoStore, count: int, reuse_grace: float
) -> list[RotationStatus]:
    statuses: list[RotationStatus] = []

    async def attempt(n: int) -> None:
        result = await store.rotate(
            rotation("digest-0", f"digest-{n + 1}", T0 + 1, reuse_grace=reuse_grace)
        )
        statuses.append(result.status)

    async with anyio.create_task_group() as tg:
        for n in range(count):
            tg.start_soon(attempt, n)
    return statuses


async def test_concurrent_rotations_without_grace(
    client_factory: ClientFactory, collection: Any
) -> None:
    """100 concurrent refreshes of one token: exactly one wins; the others
    are reuse (the first to see it revokes the family) or find it revoked."""
    stores = [MongoStore(client_factory()[DATABASE][collection.name]) for _ in "ab"]
    await stores[0].create_family(new_family())

    statuses = [
        s
        for batch in await _gather(
            _rotate_concurrently(stores[0], 50, 0.0),
            _rotate_concurrently(stores[1], 50, 0.0),
        )
        for s in batch
    ]

    assert statuses.count(RotationStatus.ROTATED) == 1
    assert statuses.count(RotationStatus.REUSED) >= 1
    assert set(statuses) <= {
        RotationStatus.ROTATED,
        RotationStatus.REUSED,
        RotationStatus.REVOKED,
    }
    state = await stores[0].get_family(FAMILY)
    assert state is not None
    assert state.revoked_at == T0 + 1
    assert state.generation == 1


async def test_concurrent_rotations_within_grace(store: MongoStore) -> None:
    """Within the grace window one refresh rotates and the 99 others retry."""
    await store.create_family(new_family())

    statuses = await _rotate_concurrently(store, 100, GRACE)

    assert statuses.count(RotationStatus.ROTATED) == 1
    assert statuses.count(RotationStatus.RETRIED) == 99
    state = await store.get_family(FAMILY)
    assert state is not None
    assert (state.generation, state.previous) == (100, "digest-0")


async def _gather(*calls: Any) -> list[Any]:
    results: list[Any] = [None] * len(calls)

    async def run(i: int, call: Any) -> None:
        results[i] = await call

    async with anyio.create_task_group() as tg:
        for i, call in enumerate(calls):
            tg.start_soon(run, i, call)
    return results


# -- native expiry -----------------------------------------------------------


@pytest.mark.parametrize("tz_aware", [False, True])
async def test_native_expiry_is_aware_utc(
    client_factory: ClientFactory, collection: Any, tz_aware: bool
) -> None:
    """The TTL field reads back as an aware UTC datetime whatever the
    client's tz_aware, and sits the lifetime left on the manager's clock
    after the wall-clock time of the write."""
    client = client_factory(tz_aware=tz_aware)
    store = MongoStore(client[DATABASE][collection.name])
    # The manager's clock is years ahead of the wall clock: only the
    # lifetime left may reach the TTL index.
    wall = datetime.now(UTC)
    await store.create_family(new_family(lifetime=600))

    expiry = await store.native_expiry(FAMILY)

    assert expiry is not None
    assert expiry.tzinfo is not None
    assert expiry.utcoffset() == timedelta(0)
    assert wall + timedelta(seconds=599) < expiry < wall + timedelta(seconds=660)
    stored = await raw(client[DATABASE][collection.name])
    assert stored is not None
    assert (stored["expire_at"].tzinfo is not None) is tz_aware


async def test_native_expiry_follows_rotation(store: MongoStore) -> None:
    """A rotation moves the TTL field to the successor's expiry, capped by
    the family's end as the float expiry is."""
    await store.create_family(new_family(lifetime=60, family_expires_at=T0 + 5000))
    wall = datetime.now(UTC)
    second = timedelta(seconds=1)

    first = await store.rotate(rotation("digest-0", "digest-1", T0 + 10))
    renewed = await store.native_expiry(FAMILY)
    then = await store.rotate(rotation("digest-1", "digest-2", T0 + 3000))
    capped = await store.native_expiry(FAMILY)

    assert (first.expires_at, then.expires_at) == (T0 + 10 + TTL, T0 + 5000)
    assert renewed is not None
    assert capped is not None
    assert wall + (TTL - 1) * second < renewed < wall + (TTL + 60) * second
    assert wall + 1999 * second < capped < wall + 2060 * second
    assert await store.native_expiry("no-such-family") is None


# -- indexes -----------------------------------------------------------------


async def test_setup_is_idempotent(collection: Any) -> None:
    """setup() may run any number of times, from any number of stores."""
    await MongoStore(collection).setup()
    store = MongoStore(collection)
    await store.setup()
    await store.setup()

    families = await collection.index_information()
    cutoffs = await collection.database[
        f"{collection.name}_cutoffs"
    ].index_information()
    assert families["expire_at_1"]["key"] == [("expire_at", 1)]
    assert families["expire_at_1"]["expireAfterSeconds"] == 0
    assert families["subject_1"]["key"] == [("subject", 1)]
    assert cutoffs["expire_at_1"]["expireAfterSeconds"] == 0
    assert sorted(families) == ["_id_", "expire_at_1", "subject_1"]


async def test_setup_runs_on_first_use(collection: Any) -> None:
    store = MongoStore(collection)

    await store.create_family(new_family())

    assert "expire_at_1" in await collection.index_information()


# -- the rest of the Store interface -----------------------------------------


async def test_family_id_clash_is_store_error(store: MongoStore) -> None:
    await store.create_family(new_family())

    with pytest.raises(StoreError) as caught:
        await store.create_family(new_family(token="digest-other"))

    assert isinstance(caught.value.__cause__, DuplicateKeyError)
    assert "digest" not in str(caught.value)


async def test_get_family_reads_what_was_created(store: MongoStore) -> None:
    await store.create_family(new_family(family_expires_at=T0 + 9000))

    state = await store.get_family(FAMILY)

    assert state is not None
    assert (state.family_id, state.subject, state.current) == (
        FAMILY,
        SUBJECT,
        "digest-0",
    )
    assert (state.previous, state.rotated_at, state.revoked_at) == (None, None, None)
    assert (state.created_at, state.expires_at) == (T0, T0 + TTL)
    assert (state.family_expires_at, state.generation) == (T0 + 9000, 0)
    assert await store.get_family("no-such-family") is None


async def test_revoke_family_leaves_a_tombstone(store: MongoStore) -> None:
    """Revoking keeps the record (and its first revocation time)."""
    await store.create_family(new_family())

    await store.revoke_family(FAMILY, T0 + 1)
    await store.revoke_family(FAMILY, T0 + 2)
    await store.revoke_family("no-such-family", T0 + 3)

    state = await store.get_family(FAMILY)
    assert state is not None
    assert (state.revoked_at, state.expires_at) == (T0 + 1, T0 + TTL)


async def test_revoke_subject_revokes_live_families_only(store: MongoStore) -> None:
    await store.create_family(new_family(family_id="live-family-1"))
    await store.create_family(new_family(family_id="live-family-2"))
    await store.create_family(
        new_family(family_id="dead-family-1", created_at=T0 - 100, lifetime=105)
    )
    await store.create_family(new_family(family_id="gone-family-1"))
    await store.revoke_family("gone-family-1", T0 + 1)
    await store.create_family(new_family(family_id="bobs-family-1", subject="bob"))

    count = await store.revoke_subject(SUBJECT, T0 + 10, T0 + 100)

    assert count == 2
    for family_id, revoked_at in [
        ("live-family-1", T0 + 10),
        ("live-family-2", T0 + 10),
        ("dead-family-1", None),
        ("gone-family-1", T0 + 1),
        ("bobs-family-1", None),
    ]:
        state = await store.get_family(family_id)
        assert state is not None
        assert state.revoked_at == revoked_at, family_id


async def test_family_created_behind_the_sweep_is_revoked(store: MongoStore) -> None:
    """A login stamped at or before a logout-everywhere but stored after its
    sweep arrives revoked; one stamped after the cut-off does not."""
    await store.revoke_subject(SUBJECT, T0 + 10, T0 + 100)

    await store.create_family(new_family(family_id="late-family-1", created_at=T0 + 9))
    await store.create_family(new_family(family_id="same-family-1", created_at=T0 + 10))
    await store.create_family(
        new_family(
            family_id="next-family-1", created_at=math.nextafter(T0 + 10, T0 + 11)
        )
    )
    await store.create_family(new_family(family_id="bobs-family-1", subject="bob"))

    for family_id in ("late-family-1", "same-family-1"):
        state = await store.get_family(family_id)
        assert state is not None
        assert state.revoked_at == T0 + 10
    for family_id in ("next-family-1", "bobs-family-1"):
        state = await store.get_family(family_id)
        assert state is not None
        assert state.revoked_at is None
    rotated = await store.rotate(
        rotation("digest-0", "digest-1", T0 + 11, family_id="late-family-1")
    )
    assert rotated.status is RotationStatus.REVOKED


async def test_subject_cutoff_is_remembered_until_given_time(
    store: MongoStore, collection: Any
) -> None:
    await store.revoke_subject(SUBJECT, T0 + 10, T0 + 100)

    assert await store.subject_revoked_at(SUBJECT, T0 + 99) == T0 + 10
    assert await store.subject_revoked_at(SUBJECT, T0 + 100) is None
    assert await store.subject_revoked_at("bob", T0 + 50) is None
    cutoffs = collection.database[f"{collection.name}_cutoffs"]
    assert await cutoffs.count_documents({"_id": SUBJECT}) == 1


async def test_later_cutoff_replaces_earlier(store: MongoStore) -> None:
    await store.revoke_subject(SUBJECT, T0 + 10, T0 + 100)

    await store.revoke_subject(SUBJECT, T0 + 20, T0 + 50)

    assert await store.subject_revoked_at(SUBJECT, T0 + 30) == T0 + 20
    assert await store.subject_revoked_at(SUBJECT, T0 + 60) is None


async def test_cutoffs_collection_can_be_chosen(
    client_factory: ClientFactory, collection: Any
) -> None:
    client = client_factory()
    cutoffs = client[DATABASE][f"{collection.name}_elsewhere"]
    store = MongoStore(collection, cutoffs_collection=cutoffs)
    try:
        await store.revoke_subject(SUBJECT, T0, T0 + 60)

        assert await cutoffs.count_documents({"_id": SUBJECT}) == 1
        assert (await cutoffs.index_information())["expire_at_1"][
            "expireAfterSeconds"
        ] == 0
    finally:
        await cutoffs.drop()


# -- failures ----------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.filterwarnings(
    # PyMongo's asyncio monitor keeps dialling the dead port; when close()
    # cancels a dial in progress, the driver drops that socket unclosed (it
    # closes it on OSError only). The driver's leak, swept up right here.
    "ignore:Exception ignored in. <socket.socket"
    ":pytest.PytestUnraisableExceptionWarning"
)
async def test_unreachable_server_is_store_error(client_kind: str) -> None:
    """A server that cannot be reached is a StoreError naming no digest."""
    url = f"mongodb://127.0.0.1:{_closed_port()}/?serverSelectionTimeoutMS=200"
    client = _client(client_kind, url)
    store = MongoStore(client[DATABASE]["families"])
    try:
        with pytest.raises(StoreError) as caught:
            await store.rotate(rotation("digest-secret", "digest-next", T0))
    finally:
        await _close(client)
        # Collect the leaked socket now, under this test's filter, rather
        # than in whichever test the garbage collector happens to run.
        gc.collect()

    assert isinstance(caught.value.__cause__, ServerSelectionTimeoutError)
    assert caught.value.error == "server_error"
    assert "digest" not in str(caught.value)


async def test_write_refused_by_server_is_store_error(collection: Any) -> None:
    """A write concern a standalone server refuses surfaces as StoreError."""
    store = MongoStore(collection.with_options(write_concern=WriteConcern(w=50)))
    await store.setup()

    with pytest.raises(StoreError) as caught:
        await store.create_family(new_family())

    assert isinstance(caught.value.__cause__, OperationFailure)


class _WriteConcernFailing:
    """A collection whose writes time out waiting for replication, which a
    standalone test server cannot be made to do."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    def with_options(self, **options: Any) -> _WriteConcernFailing:
        return _WriteConcernFailing(self._collection.with_options(**options))

    async def find_one_and_update(self, *args: Any, **kwargs: Any) -> Any:
        raise WriteConcernError(
            "waiting for replication timed out",
            64,
            {"errmsg": "waiting for replication timed out"},
        )


async def test_write_concern_error_is_store_error(
    store: MongoStore, collection: Any
) -> None:
    await store.create_family(new_family())
    failing = MongoStore(_WriteConcernFailing(collection))
    await failing.setup()

    with pytest.raises(StoreError) as caught:
        await failing.rotate(rotation("digest-0", "digest-1", T0 + 1))

    assert isinstance(caught.value.__cause__, WriteConcernError)
    assert "digest" not in str(caught.value)


# -- URLs --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "driver_url", "database", "collection"),
    [
        (
            "mongodb://db.example:27017/app?collection=sessions",
            "mongodb://db.example:27017/app",
            "app",
            "sessions",
        ),
        (
            "mongodb://u:p%2Fw@h1,h2:27018/app?replicaSet=rs0&collection=s&w=majority",
            "mongodb://u:p%2Fw@h1,h2:27018/app?replicaSet=rs0&w=majority",
            "app",
            "s",
        ),
        (
            "mongodb://localhost",
            "mongodb://localhost/",
            "tokenpair",
            "tokenpair_families",
        ),
        (
            "mongodb://localhost/?authSource=admin",
            "mongodb://localhost/?authSource=admin",
            "tokenpair",
            "tokenpair_families",
        ),
        (
            "mongodb://localhost?collection=c",
            "mongodb://localhost/",
            "tokenpair",
            "c",
        ),
        (
            "mongodb+srv://cluster0.example.net/my%20db?retryWrites=true&collection=f",
            "mongodb+srv://cluster0.example.net/my%20db?retryWrites=true",
            "my db",
            "f",
        ),
    ],
)
def test_split_url(url: str, driver_url: str, database: str, collection: str) -> None:
    """``collection`` is taken out; everything else reaches the driver as is."""
    parts = split_url(url)

    assert (parts.driver_url, parts.database, parts.collection) == (
        driver_url,
        database,
        collection,
    )


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost",
        "mongodb://",
        "mongodb://h/db?collection=",
        "mongodb://h/db#fragment",
        "mongodb://h/db?collection=a&collection=b",
        "mongodb://h/db?collection=system.users",
        "mongodb://h/db?collection=system%2Eprofile",
    ],
)
def test_split_url_rejects(url: str) -> None:
    from tokenpair import ConfigurationError

    with pytest.raises(ConfigurationError):
        split_url(url)


async def test_store_from_url_owns_its_client(
    mongodb_url: str,
) -> None:
    """The store closes the client it made, and only once."""
    name = f"families_{uuid.uuid4().hex}"
    database = split_url(mongodb_url).database
    separator = "&" if "?" in mongodb_url else "?"
    store = store_from_url(f"{mongodb_url}{separator}collection={name}")
    client = store._owned_client
    try:
        await store.create_family(new_family())
        assert repr(store) == f"MongoStore('{database}.{name}')"
        assert (await store.get_family(FAMILY)) is not None
    finally:
        await client[database][name].drop()
        await client[database][f"{name}_cutoffs"].drop()
        await store.aclose()

    with pytest.raises(InvalidOperation):
        await client[database][name].find_one({})
    await store.aclose()


@pytest.mark.parametrize(
    "url",
    [
        "mongodb://127.0.0.1/db?tls=yes",
        "mongodb://127.0.0.1/db?bogusOption=1",
        "mongodb://127.0.0.1/db?serverSelectionTimeoutMS=abc",
        "mongodb://user:S3CRET@127.0.0.1:notaport/db",
        "mongodb://user:S3CR/ET@127.0.0.1/db",
        "mongodb://user:S3C@RET@127.0.0.1/db",
        "mongodb://127.0.0.1/d.b",
        "mongodb://127.0.0.1/db?collection=a$b",
    ],
)
def test_store_from_url_refuses_what_the_driver_would_ignore_or_crash_on(
    url: str,
) -> None:
    """Misspelt options are not dropped silently (tls=yes would connect in
    plain text), and no driver error or password escapes."""
    from tokenpair import ConfigurationError

    with pytest.raises(ConfigurationError) as caught:
        store_from_url(url)
    assert "S3C" not in str(caught.value)
    assert caught.value.__cause__ is None


async def test_store_from_url_does_no_io() -> None:
    """An SRV name that does not resolve is only looked up on first use."""
    store = store_from_url("mongodb+srv://cluster0.tokenpair.invalid/app")

    assert repr(store) == "MongoStore('app.tokenpair_families')"
    await store.aclose()


@pytest.mark.parametrize(
    ("families", "cutoffs"), [("system.js", None), ("families", "system.views")]
)
async def test_reserved_collections_are_refused(
    families: str, cutoffs: str | None
) -> None:
    """MongoDB keeps its own metadata in system.* collections."""
    from pymongo import AsyncMongoClient

    from tokenpair import ConfigurationError

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        "mongodb://127.0.0.1:1/", connect=False
    )
    database = client["tokenpair_test"]
    try:
        with pytest.raises(ConfigurationError, match="reserved"):
            MongoStore(
                database[families],
                cutoffs_collection=None if cutoffs is None else database[cutoffs],
            )
    finally:
        await client.close()


_UNREACHABLE_CALL = """
import asyncio, sys, time
from tokenpair import StoreError
from tokenpair_mongodb import store_from_url

async def main():
    store = store_from_url(sys.argv[1])
    started = time.monotonic()
    try:
        await store.subject_revoked_at("alice", time.time())
    except StoreError:
        print("StoreError", time.monotonic() - started)
    finally:
        await store.aclose()

asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("url", "at_least", "below"),
    [
        # PyMongo's own default would be 30 s.
        ("mongodb://127.0.0.1:9/tokenpair_test", 4.0, 20.0),
        ("mongodb://127.0.0.1:9/tokenpair_test?serverSelectionTimeoutMS=500", 0.3, 4.0),
    ],
)
def test_an_unreachable_server_fails_calls_after_a_bounded_wait(
    url: str, at_least: float, below: float
) -> None:
    """A store made from a URL waits 5 s for a server unless the URL says
    otherwise. In a child process, because PyMongo's monitor may still hold
    its socket when the call gives up."""
    completed = subprocess.run(
        [sys.executable, "-c", _UNREACHABLE_CALL, url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    kind, waited = completed.stdout.split()
    assert kind == "StoreError"
    assert at_least <= float(waited) < below
