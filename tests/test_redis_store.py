"""The Redis store against real servers: one standalone, one cluster."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import traceback
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from urllib.parse import urlencode, urlsplit

import anyio
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tests.support.redis_servers import (
    client_for,
    cluster_nodes,
    delete_prefix,
    unique_prefix,
)
from tokenpair import (
    FAMILY_ID_PATTERN,
    ConfigurationError,
    FamilyState,
    NewFamily,
    Rotation,
    RotationResult,
    RotationStatus,
    StoreError,
)
from tokenpair_redis import RedisStore, store_from_url
from tokenpair_redis._store import subject_tag

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000.25
TTL = 60.0
GRACE = 10.0

Client = Redis | RedisCluster


@pytest.fixture
def anyio_backend() -> str:
    # redis.asyncio runs on asyncio only.
    return "asyncio"


@pytest.fixture(params=["standalone", "cluster"])
def server_url(request: pytest.FixtureRequest) -> str:
    name = "redis_url" if request.param == "standalone" else "redis_cluster_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def is_cluster(server_url: str) -> bool:
    return "+cluster://" in server_url


@pytest.fixture
async def client(server_url: str) -> AsyncIterator[Client]:
    client = client_for(server_url)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


@pytest.fixture
async def store(client: Client, prefix: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(client, prefix=prefix)
    await store.setup()
    yield store
    await store.aclose()
    await delete_prefix(client, prefix)


def with_options(url: str, **options: object) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(options)


@pytest.fixture
async def url_store(
    server_url: str, client: Client, prefix: str
) -> AsyncIterator[Callable[..., Awaitable[RedisStore]]]:
    """Stores made by store_from_url on this test's prefix."""
    made: list[RedisStore] = []

    async def make(**options: object) -> RedisStore:
        store = store_from_url(with_options(server_url, prefix=prefix, **options))
        made.append(store)
        await store.setup()
        return store

    yield make
    for store in made:
        await store.aclose()
    await delete_prefix(client, prefix)


async def create(
    store: RedisStore,
    subject: str = "alice",
    *,
    digest: str = "digest-0",
    now: float = T0,
    ttl: float = TTL,
    cap: float | None = None,
    user_data: str = '{"sub": "alice"}',
) -> str:
    family_id = store.new_family_id(subject)
    expires_at = now + ttl if cap is None else min(now + ttl, cap)
    await store.create_family(
        NewFamily(family_id, subject, user_data, digest, now, expires_at, cap)
    )
    return family_id


def rotation(
    family_id: str,
    presented: str,
    successor: str | None,
    now: float,
    *,
    grace: float = GRACE,
    ttl: float = TTL,
    user_data: str | None = None,
) -> Rotation:
    return Rotation(family_id, presented, successor, now, ttl, grace, user_data)


async def family(store: RedisStore, family_id: str) -> FamilyState:
    state = await store.get_family(family_id)
    assert state is not None
    return state


# -- creating and reading --------------------------------------------------


async def test_a_created_family_reads_back_as_stored(store: RedisStore) -> None:
    """Every field survives, times to the last bit of the double."""
    created, expires, cap = T0 + 0.1 + 0.2, T0 + 1234.000001, T0 + 86_400.5
    family_id = store.new_family_id("ümit")
    data = '{"sub": "ümit", "roles": ["a", "b"], "n": 1.5}'
    await store.create_family(
        NewFamily(family_id, "ümit", data, "digest-0", created, expires, cap)
    )

    assert await store.get_family(family_id) == FamilyState(
        family_id=family_id,
        subject="ümit",
        user_data=data,
        current="digest-0",
        previous=None,
        created_at=created,
        rotated_at=None,
        expires_at=expires,
        family_expires_at=cap,
        revoked_at=None,
        generation=0,
    )
    assert await store.get_family(store.new_family_id("ümit")) is None


async def test_a_family_id_clash_is_a_store_error(store: RedisStore) -> None:
    """Ids are unique; creating one twice is refused and changes nothing."""
    family_id = await create(store)
    before = await family(store, family_id)

    with pytest.raises(StoreError, match="exists"):
        await store.create_family(
            NewFamily(family_id, "alice", "{}", "other", T0 + 1, T0 + 99, None)
        )
    assert await family(store, family_id) == before


async def test_family_ids_carry_the_subjects_hash_tag(store: RedisStore) -> None:
    """Ids fit the token format, differ every time, and start with a tag
    derived from the subject that does not spell it out."""
    ids = {store.new_family_id("alice@example.com") for _ in range(100)}

    assert len(ids) == 100
    for family_id in ids:
        assert FAMILY_ID_PATTERN.fullmatch(family_id)
        assert family_id[:4] == subject_tag("alice@example.com")
    assert "alice" not in "".join(ids)
    assert subject_tag("alice") != subject_tag("bob")


async def test_a_cluster_refuses_family_ids_outside_the_subjects_slot(
    store: RedisStore, is_cluster: bool
) -> None:
    """On a cluster a family must share its subject's slot; one server takes
    any id."""
    foreign = NewFamily("family-0001", "alice", "{}", "digest-0", T0, T0 + TTL, None)
    if is_cluster:
        with pytest.raises(StoreError, match="new_family_id"):
            await store.create_family(foreign)
        assert await store.get_family("family-0001") is None
    else:
        await store.create_family(foreign)
        assert await store.revoke_subject("alice", T0 + 1, T0 + 100) == 1


# -- the six cases of rotate -----------------------------------------------


async def test_rotate_an_unknown_family(store: RedisStore) -> None:
    """1. No family: UNKNOWN, nothing written."""
    family_id = store.new_family_id("alice")

    result = await store.rotate(rotation(family_id, "digest-0", "digest-1", T0))

    assert result == RotationResult(RotationStatus.UNKNOWN)
    assert await store.get_family(family_id) is None


async def test_rotate_a_revoked_family(store: RedisStore) -> None:
    """2. Revoked: REVOKED even for the current token, nothing written."""
    family_id = await create(store)
    await store.revoke_family(family_id, T0 + 1)
    before = await family(store, family_id)

    result = await store.rotate(rotation(family_id, "digest-0", "digest-1", T0 + 2))

    assert result == RotationResult(RotationStatus.REVOKED)
    assert await family(store, family_id) == before
    assert before.revoked_at == T0 + 1


async def test_rotate_an_expired_family(store: RedisStore) -> None:
    """3. now >= expires_at by the given clock: EXPIRED, nothing written.
    One instant earlier the same token rotates."""
    family_id = await create(store)
    before = await family(store, family_id)

    expired = await store.rotate(rotation(family_id, "digest-0", "d-1", T0 + TTL))

    assert expired == RotationResult(RotationStatus.EXPIRED)
    assert await family(store, family_id) == before
    just_in_time = T0 + TTL - 0.001
    result = await store.rotate(rotation(family_id, "digest-0", "d-1", just_in_time))
    assert result.status is RotationStatus.ROTATED


async def test_rotate_the_current_token(store: RedisStore) -> None:
    """4. The current token: successor stored, previous kept, expiry renewed,
    generation and user data updated."""
    family_id = await create(store)
    now = T0 + 7.125

    result = await store.rotate(
        rotation(family_id, "digest-0", "digest-1", now, user_data='{"v": 2}')
    )

    assert result == RotationResult(
        RotationStatus.ROTATED, "alice", '{"v": 2}', now + TTL
    )
    state = await family(store, family_id)
    assert (state.current, state.previous) == ("digest-1", "digest-0")
    assert (state.rotated_at, state.expires_at) == (now, now + TTL)
    assert (state.generation, state.user_data) == (1, '{"v": 2}')
    assert state.revoked_at is None


async def test_rotation_never_extends_past_the_family_cap(store: RedisStore) -> None:
    """4. The renewed expiry is capped by family_expires_at."""
    cap = T0 + 90
    family_id = await create(store, cap=cap)

    result = await store.rotate(rotation(family_id, "digest-0", "digest-1", T0 + 50))

    assert result.expires_at == cap
    assert (await family(store, family_id)).expires_at == cap


async def test_rotate_without_a_successor_retires_the_family(
    store: RedisStore,
) -> None:
    """4. The current token with no successor: ROTATED, the family revoked."""
    family_id = await create(store)

    result = await store.rotate(rotation(family_id, "digest-0", None, T0 + 1))

    assert result.status is RotationStatus.ROTATED
    assert (result.subject, result.user_data) == ("alice", '{"sub": "alice"}')
    state = await family(store, family_id)
    assert (state.revoked_at, state.current, state.generation) == (
        T0 + 1,
        "digest-0",
        1,
    )
    again = await store.rotate(rotation(family_id, "digest-0", "digest-1", T0 + 2))
    assert again.status is RotationStatus.REVOKED


async def test_rotate_the_previous_token_within_the_grace_window(
    store: RedisStore,
) -> None:
    """5. The token rotated last, within the window: RETRIED; the successor
    replaces the current token, previous and rotated_at stay."""
    family_id = await create(store)
    await store.rotate(rotation(family_id, "digest-0", "digest-1", T0 + 1))
    now = T0 + 1 + GRACE - 0.001

    result = await store.rotate(rotation(family_id, "digest-0", "digest-2", now))

    assert result == RotationResult(
        RotationStatus.RETRIED, "alice", '{"sub": "alice"}', now + TTL
    )
    state = await family(store, family_id)
    assert (state.current, state.previous) == ("digest-2", "digest-0")
    assert (state.rotated_at, state.expires_at, state.generation) == (
        T0 + 1,
        now + TTL,
        2,
    )
    stale = await store.rotate(rotation(family_id, "digest-1", "digest-3", now))
    assert stale.status is RotationStatus.REUSED


@pytest.mark.parametrize(
    ("grace", "delay"),
    [(GRACE, GRACE), (GRACE, GRACE + 5), (0.0, 0.0)],
    ids=["at-the-window-end", "after-the-window", "no-window-at-all"],
)
async def test_rotate_the_previous_token_outside_the_grace_window(
    store: RedisStore, grace: float, delay: float
) -> None:
    """6. The window is strict (now < rotated_at + grace), so reuse_grace=0
    never retries: REUSED, and the family revoked at now."""
    family_id = await create(store)
    await store.rotate(rotation(family_id, "digest-0", "digest-1", T0 + 1))
    now = T0 + 1 + delay

    result = await store.rotate(
        rotation(family_id, "digest-0", "digest-2", now, grace=grace)
    )

    assert result.status is RotationStatus.REUSED
    assert result.subject == "alice"
    state = await family(store, family_id)
    assert (state.revoked_at, state.current, state.generation) == (now, "digest-1", 1)


async def test_without_a_grace_window_an_earlier_clock_is_no_retry(
    store: RedisStore,
) -> None:
    """With reuse_grace=0 the previous token is reuse even when now reads
    before rotated_at (a request that read its clock before another process
    rotated, or a server whose clock runs behind)."""
    family_id = await create(store, now=0.0, ttl=1_000.0)
    await store.rotate(rotation(family_id, "digest-0", "digest-1", 100.0, grace=0))

    result = await store.rotate(
        rotation(family_id, "digest-0", "digest-2", 99.999, grace=0)
    )

    assert result.status is RotationStatus.REUSED
    state = await family(store, family_id)
    assert (state.revoked_at, state.current, state.generation) == (
        99.999,
        "digest-1",
        1,
    )


async def test_rotate_an_older_or_unknown_token_is_reuse(store: RedisStore) -> None:
    """6. Neither current nor previous, even inside the window: REUSED. The
    previous token without a successor is no retry either."""
    first = await create(store)
    await store.rotate(rotation(first, "digest-0", "digest-1", T0 + 1))
    await store.rotate(rotation(first, "digest-1", "digest-2", T0 + 2))
    second = await create(store, digest="x-0")
    await store.rotate(rotation(second, "x-0", "x-1", T0 + 1))

    older = await store.rotate(rotation(first, "digest-0", "digest-3", T0 + 3))
    no_successor = await store.rotate(rotation(second, "x-0", None, T0 + 2))

    assert older.status is no_successor.status is RotationStatus.REUSED
    assert (await family(store, first)).revoked_at == T0 + 3
    assert (await family(store, second)).revoked_at == T0 + 2


# -- expiry by the given clock ----------------------------------------------


async def pttl(client: Client, key: str) -> int:
    return int(await client.pttl(key))


async def test_key_lifetimes_count_from_the_given_now(
    store: RedisStore, client: Client
) -> None:
    """TTLs are expires_at - now, whatever Redis's clock says: a manager
    clock far in the past still gets a full lifetime."""
    past = 1_000.0
    family_id = await create(store, now=past, ttl=60)
    key = store.family_key(family_id)
    index, cutoff = store._subject_keys("alice")

    assert 59_000 < await pttl(client, key) <= 60_000
    assert 59_000 < await pttl(client, index) <= 60_000

    await store.rotate(rotation(family_id, "digest-0", "digest-1", past + 30, ttl=120))
    assert 119_000 < await pttl(client, key) <= 120_000
    assert 119_000 < await pttl(client, index) <= 120_000

    await store.revoke_family(family_id, past + 31)
    assert 118_000 < await pttl(client, key) <= 120_000, "a tombstone keeps its TTL"

    await store.revoke_subject("alice", past + 40, past + 340)
    assert 299_000 < await pttl(client, cutoff) <= 300_000


async def index_members(client: Client, index: str) -> set[str]:
    return {
        m.decode() if isinstance(m, bytes) else m
        for m in await client.zrange(index, 0, -1)
    }


async def test_the_subject_index_drops_expired_families(
    store: RedisStore, client: Client
) -> None:
    """Creating a family removes members expired by the given now; rotations
    only move their own member, so the index never outgrows the families live
    at the subject's last login."""
    short = await create(store, ttl=10)
    long = await create(store, ttl=100)
    index, _ = store._subject_keys("alice")
    for step in range(5):
        await store.rotate(
            rotation(long, f"digest-{step}", f"digest-{step + 1}", T0 + 20 + step)
        )
    assert await index_members(client, index) == {
        store.family_key(short),
        store.family_key(long),
    }

    newest = await create(store, now=T0 + 30)

    assert await index_members(client, index) == {
        store.family_key(long),
        store.family_key(newest),
    }
    assert await store.get_family(short) is not None, "only the index forgets it"


async def test_a_rotation_puts_back_a_family_a_lost_index_dropped(
    store: RedisStore, client: Client
) -> None:
    """A rotation re-enters its family in an index that has gone, and gives
    the new index the family's lifetime, so it neither lingers nor leaves a
    live family out."""
    family_id = await create(store)
    index, _ = store._subject_keys("alice")
    await client.delete(index)

    await store.rotate(rotation(family_id, "digest-0", "digest-1", T0 + 1, ttl=90))

    assert await index_members(client, index) == {store.family_key(family_id)}
    assert 89_000 < await pttl(client, index) <= 90_000


# -- revocation -------------------------------------------------------------


async def test_revoke_family_is_idempotent(store: RedisStore) -> None:
    """The first revocation's time stays; unknown families are no error."""
    family_id = await create(store)

    await store.revoke_family(family_id, T0 + 1)
    await store.revoke_family(family_id, T0 + 2)
    await store.revoke_family(store.new_family_id("alice"), T0 + 3)

    assert (await family(store, family_id)).revoked_at == T0 + 1


async def test_revoke_subject_revokes_live_families_only(store: RedisStore) -> None:
    """Counts and revokes the live families of that subject alone, and
    remembers the cut-off until remember_until by the given clock."""
    live = [await create(store), await create(store)]
    expired = await create(store, ttl=5)
    revoked = await create(store)
    await store.revoke_family(revoked, T0 + 1)
    other = await create(store, "bob")

    count = await store.revoke_subject("alice", T0 + 10, T0 + 100)

    assert count == 2
    for family_id in live:
        assert (await family(store, family_id)).revoked_at == T0 + 10
    assert (await family(store, revoked)).revoked_at == T0 + 1
    assert (await family(store, expired)).revoked_at is None
    assert (await family(store, other)).revoked_at is None
    assert await store.subject_revoked_at("alice", T0 + 99.999) == T0 + 10
    assert await store.subject_revoked_at("alice", T0 + 100) is None
    assert await store.subject_revoked_at("bob", T0 + 11) is None
    assert await store.revoke_subject("alice", T0 + 20, T0 + 200) == 0
    assert await store.subject_revoked_at("alice", T0 + 150) == T0 + 20


async def test_the_cut_off_catches_a_family_missing_from_the_index(
    store: RedisStore, client: Client
) -> None:
    """A family that revoke_subject could not find (its index evicted) is
    still refused while the cut-off is remembered, if created at or before
    it; one created later rotates."""
    before = await create(store, now=T0)
    at_cutoff = await create(store, now=T0 + 5)
    after_cutoff = await create(store, now=T0 + 5.001)
    index, _ = store._subject_keys("alice")
    await client.delete(index)

    assert await store.revoke_subject("alice", T0 + 5, T0 + 50) == 0

    for family_id in (before, at_cutoff):
        missed = await store.rotate(rotation(family_id, "digest-0", "d-1", T0 + 6))
        assert missed == RotationResult(RotationStatus.REVOKED)
        assert (await family(store, family_id)).revoked_at == T0 + 5
    later = await store.rotate(rotation(after_cutoff, "digest-0", "d-1", T0 + 6))
    assert later.status is RotationStatus.ROTATED


@pytest.mark.parametrize("created_at", [99.5, 100.0])
async def test_a_login_racing_logout_everywhere_arrives_revoked(
    store: RedisStore, client: Client, created_at: float
) -> None:
    """A family stamped at or before the subject's remembered cut-off is
    created revoked at the cut-off and left out of the subject's index; one
    stamped after it, or another subject's, is live."""
    await store.revoke_subject("alice", 100.0, 160.0)

    racing = await create(store, now=created_at, ttl=100.0)
    after = await create(store, now=100.001, ttl=100.0)
    bob = await create(store, "bob", now=99.5, ttl=100.0)

    assert (await family(store, racing)).revoked_at == 100.0
    result = await store.rotate(rotation(racing, "digest-0", "digest-1", 101.0))
    assert result.status is RotationStatus.REVOKED
    index, _ = store._subject_keys("alice")
    assert await client.zscore(index, store.family_key(racing)) is None
    for family_id in (after, bob):
        assert (await family(store, family_id)).revoked_at is None
        rotated = await store.rotate(rotation(family_id, "digest-0", "d-1", 101.0))
        assert rotated.status is RotationStatus.ROTATED


async def test_a_cut_off_not_remembered_revokes_no_new_family(
    store: RedisStore,
) -> None:
    """A cut-off with remember_until not after it is not kept, so a family
    stamped before it is created live."""
    await store.revoke_subject("alice", 100.0, 100.0)

    family_id = await create(store, now=99.5, ttl=100.0)

    result = await store.rotate(rotation(family_id, "digest-0", "d-1", 101.0))
    assert result.status is RotationStatus.ROTATED


async def test_revoke_subject_with_nothing_to_remember(store: RedisStore) -> None:
    """remember_until not after now replaces the cut-off with none."""
    await store.revoke_subject("alice", T0, T0 + 100)

    await store.revoke_subject("alice", T0 + 1, T0 + 1)

    assert await store.subject_revoked_at("alice", T0 + 1) is None


async def test_revoke_subject_is_atomic_with_concurrent_creation(
    url_store: Callable[..., Awaitable[RedisStore]],
) -> None:
    """Every family whose creation finished before the revocation began is
    revoked, and the count matches exactly the families revoked."""
    store = await url_store()
    finished_before: list[str] = []
    enough, started = anyio.Event(), anyio.Event()
    created: list[str] = []

    async def make(index: int) -> None:
        family_id = await create(store, digest=f"digest-{index}")
        created.append(family_id)
        if not started.is_set():
            finished_before.append(family_id)
        if len(created) == 50:
            enough.set()

    count = 0

    async def revoke() -> None:
        nonlocal count
        await enough.wait()
        started.set()
        # The cut-off precedes every creation stamp, so no family is
        # revoked on arrival: each revoked one was found in the index.
        count = await store.revoke_subject("alice", T0 - 1, T0 + 100)

    async with anyio.create_task_group() as group:
        for index in range(200):
            group.start_soon(make, index)
        group.start_soon(revoke)

    states = [await family(store, family_id) for family_id in created]
    revoked = {s.family_id for s in states if s.revoked_at is not None}
    assert len(created) == 200
    assert set(finished_before) <= revoked
    assert len(revoked) == count >= 50


# -- concurrency, pools and scripts ------------------------------------------


async def test_concurrent_rotations_of_one_token_rotate_once(
    url_store: Callable[..., Awaitable[RedisStore]],
) -> None:
    """200 refreshes at once through a pool of 8: one ROTATED, the rest
    RETRIED within the window; callers queue for connections, none fails."""
    store = await url_store(max_connections=8, pool_timeout=30)
    family_id = await create(store)

    results = await gather(
        store.rotate(rotation(family_id, "digest-0", f"next-{n}", T0 + 1))
        for n in range(200)
    )

    counts = Counter(result.status for result in results)
    assert counts == {RotationStatus.ROTATED: 1, RotationStatus.RETRIED: 199}
    assert (await family(store, family_id)).generation == 200


async def test_concurrent_rotations_without_grace_revoke_on_the_second(
    url_store: Callable[..., Awaitable[RedisStore]],
) -> None:
    """Without a window: one ROTATED, one REUSED, all others REVOKED."""
    store = await url_store(max_connections=8)
    family_id = await create(store)

    results = await gather(
        store.rotate(rotation(family_id, "digest-0", f"next-{n}", T0 + 1, grace=0))
        for n in range(200)
    )

    counts = Counter(result.status for result in results)
    assert counts == {
        RotationStatus.ROTATED: 1,
        RotationStatus.REUSED: 1,
        RotationStatus.REVOKED: 198,
    }


async def gather(calls: Iterable[Awaitable[RotationResult]]) -> list[RotationResult]:
    results: list[RotationResult] = []

    async def run(call: Awaitable[RotationResult]) -> None:
        results.append(await call)

    async with anyio.create_task_group() as group:
        for call in calls:
            group.start_soon(run, call)
    return results


def address(url: str) -> tuple[str, int]:
    """Host and port of a standalone server URL."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 6379


def node_clients(server_url: str) -> list[Redis]:
    if "+cluster://" not in server_url:
        return [Redis.from_url(server_url)]
    return [Redis(host=host, port=port) for host, port in cluster_nodes(server_url)]


async def test_scripts_come_back_after_script_flush(
    store: RedisStore, server_url: str
) -> None:
    """After SCRIPT FLUSH on every node, the next call reloads the script
    (NOSCRIPT fallback) and works."""
    family_id = await create(store)
    sha = store._rotate.sha
    nodes = node_clients(server_url)
    try:
        for node in nodes:
            await node.script_flush()
            assert await node.script_exists(sha) == [False]

        result = await store.rotate(rotation(family_id, "digest-0", "digest-1", T0 + 1))

        assert result.status is RotationStatus.ROTATED
        assert any([await node.script_exists(sha) == [True] for node in nodes])
        second = await create(store, digest="again")
        assert (await family(store, second)).current == "again"
    finally:
        for node in nodes:
            await node.aclose()


async def top_level_commands(
    store: RedisStore,
    key: str,
    server_url: str,
    action: Callable[[], Awaitable[object]],
) -> list[str]:
    """The commands that reached the server owning ``key`` from clients while
    ``action`` ran (not those a script issued), read through MONITOR."""
    client = store.client
    if isinstance(client, RedisCluster):
        node = client.get_node_from_key(key)
        assert node is not None
        host, port = node.host, int(node.port)
    else:
        host, port = address(server_url)
    marker = f"end-of-action-{uuid.uuid4().hex}"
    watcher, signaller = Redis(host=host, port=port), Redis(host=host, port=port)
    seen: list[str] = []
    try:
        async with watcher.monitor() as monitor:
            await action()
            await signaller.echo(marker)
            with anyio.fail_after(10):
                while True:
                    command = await monitor.next_command()
                    if marker in command["command"]:
                        break
                    name = command["command"].split(" ", 1)[0].upper()
                    if command["client_type"] != "lua" and (
                        store.prefix in command["command"]
                        or name in {"EVAL", "EVALSHA", "SCRIPT", "FUNCTION"}
                    ):
                        seen.append(name)
    finally:
        await watcher.aclose()
        await signaller.aclose()
    return seen


async def test_create_and_rotate_are_one_round_trip_each(
    store: RedisStore, server_url: str
) -> None:
    """One EVALSHA per create_family and per rotate reaches the server."""
    subject = "alice"
    family_id = store.new_family_id(subject)
    key = store.family_key(family_id)
    await store.get_family(family_id)  # the cluster client discovers its nodes
    new = NewFamily(family_id, subject, "{}", "digest-0", T0, T0 + TTL, None)

    created = await top_level_commands(
        store, key, server_url, lambda: store.create_family(new)
    )
    rotated = await top_level_commands(
        store,
        key,
        server_url,
        lambda: store.rotate(rotation(family_id, "digest-0", "digest-1", T0 + 1)),
    )

    assert created == ["EVALSHA"]
    assert rotated == ["EVALSHA"]


async def test_callers_wait_for_a_connection_then_fail_cleanly(
    url_store: Callable[..., Awaitable[RedisStore]], server_url: str
) -> None:
    """With every connection busy, a call waits for pool_timeout and then
    raises StoreError rather than a driver error."""
    store = await url_store(max_connections=1, pool_timeout=0.2)
    family_id = await create(store)
    nodes = node_clients(server_url)
    try:
        for node in nodes:
            await node.client_pause(1000, all=False)
        outcomes: list[object] = []

        async def attempt(n: int) -> None:
            try:
                outcomes.append(
                    await store.rotate(rotation(family_id, "digest-0", f"n{n}", T0 + 1))
                )
            except StoreError as exc:
                outcomes.append(exc)

        started = time.monotonic()
        async with anyio.create_task_group() as group:
            for n in range(2):
                group.start_soon(attempt, n)
        assert time.monotonic() - started < 5
    finally:
        for node in nodes:
            await node.client_unpause()
            await node.aclose()

    errors = [o for o in outcomes if isinstance(o, StoreError)]
    results = [o for o in outcomes if isinstance(o, RotationResult)]
    assert len(errors) == 1
    assert errors[0].__cause__ is not None
    assert [r.status for r in results] == [RotationStatus.ROTATED]


# -- failures ---------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("kind", ["handed", "standalone-url", "cluster-url"])
async def test_an_unreachable_server_is_a_store_error(kind: str) -> None:
    """Connection refused becomes StoreError, the driver's error chained, and
    the message names no token digest."""
    port = closed_port()
    if kind == "handed":
        client = Redis(port=port, retry=Retry(NoBackoff(), 1))
        store = RedisStore(client)
    else:
        scheme = "redis" if kind == "standalone-url" else "redis+cluster"
        store = store_from_url(f"{scheme}://127.0.0.1:{port}?socket_connect_timeout=2")
    try:
        family_id = store.new_family_id("alice")
        with pytest.raises(StoreError) as caught:
            await store.rotate(rotation(family_id, "secret-digest", "next", T0))
        assert caught.value.__cause__ is not None
        assert "secret-digest" not in str(caught.value)
        assert caught.value.error == "server_error"
        with pytest.raises(StoreError):
            await store.setup()
    finally:
        await store.aclose()
        if kind == "handed":
            await client.aclose()


@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.parametrize("scheme", ["redis", "redis+cluster"])
async def test_trio_is_refused_before_anything_connects(scheme: str) -> None:
    """redis.asyncio is bound to asyncio; under trio every call says so
    plainly, and no connection is even attempted."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        store = store_from_url(f"{scheme}://127.0.0.1:{port}")
        family_id = store.new_family_id("alice")
        calls: list[Callable[[], Awaitable[object]]] = [
            store.setup,
            lambda: store.rotate(rotation(family_id, "digest-0", "digest-1", T0)),
            lambda: store.get_family(family_id),
            lambda: store.revoke_family(family_id, T0),
            lambda: store.revoke_subject("alice", T0, T0 + 1),
            lambda: store.subject_revoked_at("alice", T0),
            lambda: create(store),
            store.aclose,
        ]
        for call in calls:
            with pytest.raises(ConfigurationError, match="asyncio only"):
                await call()

        with pytest.raises(BlockingIOError):
            listener.accept()


class DroppingProxy:
    """A TCP proxy in front of a real server that, when armed, lets the next
    EVALSHA through and then cuts the connection instead of passing on the
    reply: the script ran, the client never hears of it."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.armed = False
        self.dropped = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._streams: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> DroppingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for stream in self._streams:
            stream.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._streams += [writer, up_writer]
        drop_next_reply = False

        async def upstream() -> None:
            nonlocal drop_next_reply
            while data := await reader.read(65536):
                if self.armed and b"EVALSHA" in data.upper():
                    self.armed = False
                    drop_next_reply = True
                up_writer.write(data)
                await up_writer.drain()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                if drop_next_reply:
                    self.dropped += 1
                    return
                writer.write(data)
                await writer.drain()

        pumps = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        # Closing both ends lets the other pump see end-of-file and return.
        for stream in (writer, up_writer):
            stream.close()
        await asyncio.gather(*pumps, return_exceptions=True)
        for stream in (writer, up_writer):
            with contextlib.suppress(OSError):
                await stream.wait_closed()


@pytest.fixture
async def proxied_store(
    redis_url: str, prefix: str
) -> AsyncIterator[tuple[RedisStore, DroppingProxy]]:
    async with DroppingProxy(address(redis_url)) as proxy:
        # redis-py's default: retry a command on ConnectionError.
        client = Redis(host="127.0.0.1", port=proxy.port)
        store = RedisStore(client, prefix=prefix)
        await store.setup()
        yield store, proxy
        await delete_prefix(client, prefix)
        await client.aclose()


async def test_a_lost_rotate_reply_resent_by_the_driver_is_not_reuse(
    proxied_store: tuple[RedisStore, DroppingProxy],
) -> None:
    """The connection drops after the script ran; the driver resends the same
    call, which gets the first answer instead of being judged a second use
    (which without a grace window would revoke the family)."""
    store, proxy = proxied_store
    family_id = await create(store)
    proxy.armed = True

    result = await store.rotate(
        rotation(family_id, "digest-0", "digest-1", T0 + 1, grace=0)
    )

    assert proxy.dropped == 1
    assert result == RotationResult(
        RotationStatus.ROTATED, "alice", '{"sub": "alice"}', T0 + 1 + TTL
    )
    state = await family(store, family_id)
    assert (state.current, state.generation, state.revoked_at) == ("digest-1", 1, None)
    again = await store.rotate(
        rotation(family_id, "digest-0", "digest-2", T0 + 1, grace=0)
    )
    assert again.status is RotationStatus.REUSED, "a new call is judged anew"


async def test_lost_create_and_revoke_subject_replies_are_harmless(
    proxied_store: tuple[RedisStore, DroppingProxy],
) -> None:
    """A resent create is no clash; a resent revoke_subject reports the
    first count."""
    store, proxy = proxied_store
    proxy.armed = True
    family_id = await create(store)
    assert proxy.dropped == 1
    await create(store)

    proxy.armed = True
    count = await store.revoke_subject("alice", T0 + 1, T0 + 100)

    assert proxy.dropped == 2
    assert count == 2
    assert (await family(store, family_id)).revoked_at == T0 + 1


# -- clients, URLs and closing -----------------------------------------------


async def test_a_decoding_client_works_too(server_url: str, prefix: str) -> None:
    """decode_responses=True clients return str; the store takes both."""
    if "+cluster://" in server_url:
        nodes = cluster_nodes(server_url)
        client: Client = RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in nodes], decode_responses=True
        )
    else:
        client = Redis.from_url(server_url, decode_responses=True)
    store = RedisStore(client, prefix=prefix)
    try:
        family_id = await create(store)
        result = await store.rotate(rotation(family_id, "digest-0", "d-1", T0 + 1))
        assert result.status is RotationStatus.ROTATED
        assert (await family(store, family_id)).current == "d-1"
        assert await store.revoke_subject("alice", T0 + 2, T0 + 10) == 1
        assert await store.subject_revoked_at("alice", T0 + 3) == T0 + 2
    finally:
        await delete_prefix(client, prefix)
        await client.aclose()


@pytest.mark.parametrize("decode_responses", [False, True])
async def test_every_rotation_outcome_reads_back_whole(
    server_url: str, prefix: str, decode_responses: bool
) -> None:
    """The rotation script answers in one string, the subject framed by its
    length in bytes: subjects and user data with newlines and characters of
    several bytes come back exactly, from raw and decoding clients alike."""
    if "+cluster://" in server_url:
        nodes = cluster_nodes(server_url)
        client: Client = RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in nodes],
            decode_responses=decode_responses,
        )
    else:
        client = Redis.from_url(server_url, decode_responses=decode_responses)
    store = RedisStore(client, prefix=prefix)
    subject, data = "ä\n1\n2\n💥", '{"sub": "ä\\n💥", "note": "\\n3\\n"}'
    renewed_data = '{"sub": "ä\\n💥", "n": "ÿ"}'
    try:
        family_id = await create(store, subject, user_data=data)
        rotated = await store.rotate(
            rotation(family_id, "digest-0", "digest-1", T0 + 1, user_data=renewed_data)
        )
        retried = await store.rotate(rotation(family_id, "digest-0", "d-2", T0 + 2))
        reused = await store.rotate(rotation(family_id, "digest-0", "d-3", T0 + 20))
        revoked = await store.rotate(rotation(family_id, "d-2", "d-4", T0 + 21))
        unknown = await store.rotate(
            rotation(store.new_family_id(subject), "x", "y", T0 + 1)
        )
    finally:
        await delete_prefix(client, prefix)
        await client.aclose()

    assert rotated == RotationResult(
        RotationStatus.ROTATED, subject, renewed_data, T0 + 1 + TTL
    )
    assert retried == RotationResult(
        RotationStatus.RETRIED, subject, renewed_data, T0 + 2 + TTL
    )
    assert reused == RotationResult(RotationStatus.REUSED, subject)
    assert revoked == RotationResult(RotationStatus.REVOKED)
    assert unknown == RotationResult(RotationStatus.UNKNOWN)


async def test_stores_share_state_through_the_server(
    url_store: Callable[..., Awaitable[RedisStore]],
) -> None:
    """Two stores from one URL see each other's families."""
    first, second = await url_store(), await url_store()
    family_id = await create(first)

    result = await second.rotate(rotation(family_id, "digest-0", "digest-1", T0 + 1))

    assert result.status is RotationStatus.ROTATED
    assert (await family(first, family_id)).current == "digest-1"


async def test_aclose_closes_only_a_client_the_store_made(
    client: Client, server_url: str, prefix: str
) -> None:
    """A handed client survives aclose; a store made from a URL closes its
    own and says which kind it is without the URL's password."""
    handed = RedisStore(client, prefix=prefix)
    await handed.aclose()
    assert await client.ping()

    url = server_url.replace("://", "://user:hunter2@", 1)
    owned = store_from_url(with_options(url, prefix=prefix))
    assert "hunter2" not in repr(owned)
    assert owned.prefix == prefix
    assert isinstance(owned.client, RedisCluster) == ("+cluster" in server_url)
    await owned.aclose()
    await owned.aclose()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://localhost", "starts with redis://"),
        ("redis-cluster://a:1", "starts with redis://"),
        ("redis+cluster://", "at least one node"),
        ("redis+cluster://a:notaport", "host:port"),
        ("redis://localhost:99999", "host:port"),
        ("redis://localhost?max_connections=many", "max_connections"),
        ("redis://localhost?max_connections=0", "max_connections"),
        ("redis://localhost?max_connections=-3", "max_connections"),
        ("redis://localhost?pool_timeout=soon", "pool_timeout"),
        ("redis://localhost?pool_timeout=nan", "pool_timeout"),
        ("redis://localhost?pool_timeout=inf", "pool_timeout"),
        ("redis://localhost?pool_timeout=-1", "pool_timeout"),
        ("redis://localhost?socket_timeout=soon", "'socket_timeout'"),
        ("redis://[", "IPv6"),
        ("redis://localhost:6379/abc", "database"),
        ("redis://localhost:6379/0/extra", "database"),
        ("redis://localhost:6379/-1", "database"),
        ("redis://localhost:6379/1?db=1", "database once"),
        ("redis+cluster://a:1/2", "only database 0"),
        ("redis+cluster://a:1?db=2", "only database 0"),
        ("redis://localhost?prefix=a&prefix=b", "'prefix' is given more than once"),
        ("redis://localhost?socket_timeout=1&socket_timeout=2", "more than once"),
        ("redis://localhost/0#section", "fragment"),
        ("redis://localhost/0#", "fragment"),
        ("redis://localhost?bogus=1", "neither the store"),
        ("redis://localhost?retry=3", "neither the store"),
        ("redis://localhost?ssl_ca_certs=/ca.pem", "rediss://"),
        ("redis://localhost?ssl_check_hostname=true", "rediss://"),
        ("redis://localhost?encoding=utf-16", "no encoding option"),
        ("redis+cluster://a:1?encoding=bogus", "no encoding option"),
        ("redis://localhost?encoding_errors=ignore", "no encoding option"),
        ("redis://localhost?timeout=0.5&pool_timeout=30", "pool_timeout, not"),
        ("redis+cluster://a:1?timeout=0.5", "pool_timeout, not"),
        ("redis://localhost?protocol=4", "'protocol'"),
        ("redis://localhost?socket_timeout=0", "'socket_timeout'"),
        ("redis://localhost?socket_timeout=-1", "'socket_timeout'"),
        ("redis://localhost?socket_timeout=inf", "'socket_timeout'"),
        ("redis://localhost?socket_connect_timeout=-1", "'socket_connect_timeout'"),
        ("redis+cluster://a:1?socket_connect_timeout=0", "'socket_connect_timeout'"),
        ("redis://localhost?health_check_interval=-5", "'health_check_interval'"),
        ("redis://localhost?client_name=has%20space", "'client_name'"),
        ("redis://localhost?lib_name=a%0Ab", "'lib_name'"),
        ("rediss://localhost?ssl_cert_reqs=bogus", "'ssl_cert_reqs'"),
        ("rediss://localhost?ssl_min_version=99", "'ssl_min_version'"),
        ("rediss://localhost?ssl_ciphers=NOPE", "'ssl_ciphers'"),
    ],
)
def test_bad_urls_are_configuration_errors(url: str, message: str) -> None:
    """Nothing connects; the mistake is named."""
    with pytest.raises(ConfigurationError, match=message):
        store_from_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:TOP/SECRET@127.0.0.1:6379/0",
        "redis://:TOP?SECRET@127.0.0.1:6379/0",
        "redis://:TOP#SECRET@127.0.0.1:6379/0",
        "redis://user:TOP[SECRET@127.0.0.1:6379/0",
        "redis://:TOPSECRET@127.0.0.1:SECRET/0",
        "redis://:TOPSECRET@127.0.0.1:6379/SECRET",
        "redis://:TOP/SECRET@127.0.0.1:6379/0?prefix=a&prefix=b",
        "redis://127.0.0.1:6379/0?TOPSECRET",
        "redis://127.0.0.1:6379/0?password=TOPSECRET&socket_timeout=-1",
        "redis://127.0.0.1:6379/0?client_name=TOP%20SECRET",
        "rediss+cluster://:TOP/SECRET@127.0.0.1:7000,127.0.0.1:7001",
        "redis+cluster://:TOP?SECRET@127.0.0.1:7000",
        "redis+cluster://:TOPSECRET@127.0.0.1:7000,127.0.0.1:SECRET",
    ],
)
def test_url_errors_quote_no_part_of_the_password(url: str) -> None:
    """A password with an unencoded '/', '?', '#' or '[' spills into the
    rest of the URL; no part of it reaches the message or the traceback."""
    with pytest.raises(ConfigurationError) as caught:
        store_from_url(url)

    shown = "".join(traceback.format_exception(caught.value))
    for part in ("TOP", "SECRET"):
        assert part not in shown
    assert caught.value.__cause__ is None


def test_a_percent_encoded_password_is_read_whole() -> None:
    """The way to write such a password: percent-encoded, it reaches the
    connection as it is, and the database and options still apply."""
    store = store_from_url(
        "redis://user:TOP%2FSE%3FC%23R%40ET@127.0.0.1:6379/3?client_name=a@b"
    )
    client = store.client
    assert isinstance(client, Redis)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("user", "TOP/SE?C#R@ET")
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("127.0.0.1", 6379, 3)
    assert kwargs["client_name"] == "a@b"


def test_driver_options_reach_the_connection() -> None:
    """Options redis-py takes from a URL pass through, TLS ones on rediss."""
    plain = store_from_url(
        "redis://127.0.0.1:6379/0?socket_timeout=2&health_check_interval=30"
        "&lib_name=app&protocol=3"
    )
    tls = store_from_url(
        "rediss://127.0.0.1:6380/0?ssl_ca_certs=/etc/ca.pem&ssl_cert_reqs=required"
        "&ssl_check_hostname=true&ssl_min_version=771&ssl_ciphers=ECDHE%2BAESGCM"
    )
    credentials = store_from_url("redis://127.0.0.1:6379/0?username=app&password=pw")
    plain_kwargs = plain.client.connection_pool.connection_kwargs
    tls_kwargs = tls.client.connection_pool.connection_kwargs
    assert plain_kwargs["socket_timeout"] == 2.0
    assert plain_kwargs["health_check_interval"] == 30
    assert plain_kwargs["lib_name"] == "app"
    assert tls_kwargs["ssl_ca_certs"] == "/etc/ca.pem"
    assert tls_kwargs["ssl_check_hostname"] is True
    assert tls_kwargs["ssl_ciphers"] == "ECDHE+AESGCM"
    credentials_kwargs = credentials.client.connection_pool.connection_kwargs
    assert (credentials_kwargs["username"], credentials_kwargs["password"]) == (
        "app",
        "pw",
    )
