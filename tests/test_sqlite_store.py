"""The SQLite store against real database files."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from tokenpair import (
    ConfigurationError,
    NewFamily,
    Rotation,
    RotationResult,
    RotationStatus,
    Store,
    StoreError,
)
from tokenpair.testing import StoreContract
from tokenpair_sqlite import SQLiteStore, store_from_url

pytestmark = pytest.mark.anyio

FAMILY = "family-0001"
T0 = 1_000.0
TTL = 100.0
GRACE = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "tokens.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(db_path) as store:
        yield store


async def create(
    store: SQLiteStore,
    family_id: str = FAMILY,
    *,
    subject: str = "alice",
    digest: str = "digest-0",
    now: float = T0,
    expires_at: float = T0 + TTL,
    family_expires_at: float | None = None,
) -> None:
    await store.create_family(
        NewFamily(
            family_id=family_id,
            subject=subject,
            user_data='{"sub": "alice"}',
            token=digest,
            created_at=now,
            expires_at=expires_at,
            family_expires_at=family_expires_at,
        )
    )


async def rotate(
    store: SQLiteStore,
    presented: str,
    successor: str | None,
    now: float,
    *,
    family_id: str = FAMILY,
    grace: float = GRACE,
    user_data: str | None = None,
) -> RotationResult:
    return await store.rotate(
        Rotation(
            family_id=family_id,
            presented=presented,
            successor=successor,
            now=now,
            refresh_ttl=TTL,
            reuse_grace=grace,
            user_data=user_data,
        )
    )


def raw(path: Path) -> sqlite3.Connection:
    """A plain connection beside the store's, as another program would open."""
    return sqlite3.connect(path, isolation_level=None)


# -- opening the file ---------------------------------------------------------


async def test_setup_puts_the_file_in_wal_mode_with_tables_and_indexes(
    store: SQLiteStore, db_path: Path
) -> None:
    """The file is in WAL mode and holds the prefixed tables and indexes."""
    with raw(db_path) as conn:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}

    assert mode == "wal"
    assert {
        "tokenpair_families",
        "tokenpair_subject_cutoffs",
        "tokenpair_families_subject",
        "tokenpair_families_expires_at",
    } <= names


async def test_setup_is_idempotent_and_lazy(db_path: Path) -> None:
    """setup() may run twice, and the first call on a fresh store opens it."""
    async with SQLiteStore(db_path) as first:
        await first.setup()
    lazy = SQLiteStore(db_path)
    try:
        await create(lazy)
        assert await lazy.get_family(FAMILY) is not None
    finally:
        await lazy.aclose()


async def test_a_closed_store_opens_again_on_use(db_path: Path) -> None:
    """aclose() releases the connections; the next call reopens them."""
    store = SQLiteStore(db_path)
    await create(store)
    await store.aclose()
    await store.aclose()
    try:
        assert (await rotate(store, "digest-0", "digest-1", T0)).status is (
            RotationStatus.ROTATED
        )
    finally:
        await store.aclose()


async def test_table_prefixes_keep_stores_apart(db_path: Path) -> None:
    """Two prefixes in one file are two independent stores."""
    async with (
        SQLiteStore(db_path, table_prefix="a_") as a,
        SQLiteStore(db_path, table_prefix="b_") as b,
    ):
        await create(a)
        assert await b.get_family(FAMILY) is None
        await create(b)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_is_refused_with_a_clear_error(db_path: Path) -> None:
    """aiosqlite is bound to asyncio; under trio the store says so."""
    store = SQLiteStore(db_path)

    with pytest.raises(ConfigurationError, match="asyncio only"):
        await store.setup()
    assert not await anyio.Path(db_path).exists()


# -- the rotation rule, case by case -------------------------------------------


async def test_unknown_family(store: SQLiteStore) -> None:
    """Case 1: no family, nothing written."""
    result = await rotate(store, "digest-0", "digest-1", T0)

    assert result == RotationResult(RotationStatus.UNKNOWN)
    assert await store.get_family(FAMILY) is None


async def test_revoked_family_writes_nothing(store: SQLiteStore) -> None:
    """Case 2 outranks everything, the current token included."""
    await create(store)
    await store.revoke_family(FAMILY, T0 + 1)
    before = await store.get_family(FAMILY)

    result = await rotate(store, "digest-0", "digest-1", T0 + 2)

    assert result.status is RotationStatus.REVOKED
    assert await store.get_family(FAMILY) == before


@pytest.mark.parametrize(
    ("now", "status"),
    [
        (T0 + TTL - 0.001, RotationStatus.ROTATED),
        (T0 + TTL, RotationStatus.EXPIRED),
        (T0 + TTL + 1, RotationStatus.EXPIRED),
    ],
)
async def test_expiry_boundary(
    store: SQLiteStore, now: float, status: RotationStatus
) -> None:
    """Case 3: expired from now == expires_at on, and nothing written."""
    await create(store)
    before = await store.get_family(FAMILY)

    result = await rotate(store, "digest-0", "digest-1", now)

    assert result.status is status
    if status is RotationStatus.EXPIRED:
        assert await store.get_family(FAMILY) == before


async def test_expiry_outranks_reuse(store: SQLiteStore) -> None:
    """An old token presented after expiry is expired, not reuse."""
    await create(store)
    await rotate(store, "digest-0", "digest-1", T0 + 1)

    result = await rotate(store, "digest-0", "digest-2", T0 + 1 + TTL)

    assert result.status is RotationStatus.EXPIRED
    state = await store.get_family(FAMILY)
    assert state is not None
    assert state.revoked_at is None


async def test_rotation_moves_current_to_previous(store: SQLiteStore) -> None:
    """Case 4: the successor becomes current, with a renewed expiry."""
    await create(store)

    result = await rotate(
        store, "digest-0", "digest-1", T0 + 5, user_data='{"sub": "alice", "v": 2}'
    )

    assert result == RotationResult(
        RotationStatus.ROTATED,
        subject="alice",
        user_data='{"sub": "alice", "v": 2}',
        expires_at=T0 + 5 + TTL,
    )
    assert isinstance(result.expires_at, float)
    state = await store.get_family(FAMILY)
    assert state is not None
    assert (state.current, state.previous) == ("digest-1", "digest-0")
    assert state.rotated_at == T0 + 5
    assert state.expires_at == T0 + 5 + TTL
    assert state.generation == 1
    assert state.user_data == '{"sub": "alice", "v": 2}'
    assert state.revoked_at is None


async def test_rotation_keeps_user_data_when_none_is_given(
    store: SQLiteStore,
) -> None:
    """user_data=None leaves the stored data alone."""
    await create(store)

    result = await rotate(store, "digest-0", "digest-1", T0)

    assert result.user_data == '{"sub": "alice"}'


async def test_rotation_is_capped_by_the_family_expiry(store: SQLiteStore) -> None:
    """expires_at becomes min(now + refresh_ttl, family_expires_at)."""
    await create(store, expires_at=T0 + 50, family_expires_at=T0 + 50)

    result = await rotate(store, "digest-0", "digest-1", T0 + 10)

    assert result.expires_at == T0 + 50
    state = await store.get_family(FAMILY)
    assert state is not None
    assert state.expires_at == T0 + 50
    assert state.family_expires_at == T0 + 50


async def test_rotation_without_successor_retires_the_family(
    store: SQLiteStore,
) -> None:
    """Case 4 without a successor revokes the family and reports ROTATED."""
    await create(store)

    result = await rotate(store, "digest-0", None, T0 + 1)

    assert result.status is RotationStatus.ROTATED
    assert result.subject == "alice"
    state = await store.get_family(FAMILY)
    assert state is not None
    assert state.revoked_at == T0 + 1
    assert state.generation == 1
    assert (await rotate(store, "digest-0", "x", T0 + 2)).status is (
        RotationStatus.REVOKED
    )


@pytest.mark.parametrize("delay", [0.0, 4.0, GRACE - 0.001])
async def test_retry_within_grace_replaces_the_successor(
    store: SQLiteStore, delay: float
) -> None:
    """Case 5: previous and rotated_at stay, current and expiry move. A retry
    at the very instant of the rotation is still told apart from it."""
    await create(store)
    await rotate(store, "digest-0", "digest-1", T0 + 1)

    result = await rotate(store, "digest-0", "digest-2", T0 + 1 + delay)

    assert result.status is RotationStatus.RETRIED
    assert result.expires_at == T0 + 1 + delay + TTL
    state = await store.get_family(FAMILY)
    assert state is not None
    assert (state.current, state.previous) == ("digest-2", "digest-0")
    assert state.rotated_at == T0 + 1
    assert state.generation == 2
    assert (await rotate(store, "digest-2", "digest-3", T0 + 12)).status is (
        RotationStatus.ROTATED
    )


async def test_grace_ends_exactly_at_its_length(store: SQLiteStore) -> None:
    """Case 6 at now == rotated_at + reuse_grace: reuse, family revoked."""
    await create(store)
    await rotate(store, "digest-0", "digest-1", T0 + 1)

    result = await rotate(store, "digest-0", "digest-2", T0 + 1 + GRACE)

    assert result.status is RotationStatus.REUSED
    state = await store.get_family(FAMILY)
    assert state is not None
    assert state.revoked_at == T0 + 1 + GRACE
    assert state.current == "digest-1"
    assert state.generation == 1


async def test_zero_grace_never_retries(store: SQLiteStore) -> None:
    """With reuse_grace=0 even a retry at the same instant is reuse."""
    await create(store)
    await rotate(store, "digest-0", "digest-1", T0, grace=0)

    result = await rotate(store, "digest-0", "digest-2", T0, grace=0)

    assert result.status is RotationStatus.REUSED
    assert (await rotate(store, "digest-1", "digest-3", T0, grace=0)).status is (
        RotationStatus.REVOKED
    )


async def test_zero_grace_is_no_retry_for_an_earlier_clock(
    store: SQLiteStore,
) -> None:
    """With reuse_grace=0, a request whose now reads before rotated_at (taken
    before another process rotated, or from a clock running behind) is reuse,
    not a retry inside an empty window."""
    await create(store, now=0.0)
    await rotate(store, "digest-0", "digest-1", 100.0, grace=0)

    result = await rotate(store, "digest-0", "digest-2", 99.999, grace=0)

    assert result.status is RotationStatus.REUSED
    state = await store.get_family(FAMILY)
    assert state is not None
    assert (state.current, state.revoked_at) == ("digest-1", 99.999)


async def test_retry_without_successor_is_reuse(store: SQLiteStore) -> None:
    """Case 5 needs a successor; retiring with the previous token is reuse."""
    await create(store)
    await rotate(store, "digest-0", "digest-1", T0)

    result = await rotate(store, "digest-0", None, T0 + 1)

    assert result.status is RotationStatus.REUSED


@pytest.mark.parametrize("presented", ["digest-0", "never-issued"])
async def test_older_or_foreign_tokens_are_reuse(
    store: SQLiteStore, presented: str
) -> None:
    """Case 6: any other digest revokes the family, even inside the grace."""
    await create(store)
    await rotate(store, "digest-0", "digest-1", T0)
    await rotate(store, "digest-1", "digest-2", T0 + 1)

    result = await rotate(store, presented, "digest-3", T0 + 2)

    assert result.status is RotationStatus.REUSED
    assert (await rotate(store, "digest-2", "digest-3", T0 + 2)).status is (
        RotationStatus.REVOKED
    )


# -- how many statements a rotation costs --------------------------------------


async def traced(
    store: SQLiteStore, action: Callable[[], Awaitable[object]]
) -> list[str]:
    """Run ``action`` and return every statement either connection ran."""
    statements: list[str] = []
    conns = store._conns
    assert conns is not None
    for conn in conns:
        await conn.set_trace_callback(statements.append)
    try:
        await action()
    finally:
        for conn in conns:
            await conn.set_trace_callback(None)  # type: ignore[arg-type]
    return statements


async def test_a_rotation_is_one_statement(store: SQLiteStore) -> None:
    """The common rotation is a single UPDATE ... RETURNING, no BEGIN."""
    await create(store)

    statements = await traced(store, lambda: rotate(store, "digest-0", "d-1", T0))

    assert len(statements) == 1
    assert statements[0].lstrip().startswith("UPDATE tokenpair_families")
    assert "RETURNING" in statements[0]


async def test_a_retry_is_one_statement(store: SQLiteStore) -> None:
    """The grace-window retry takes the same single statement."""
    await create(store)
    await rotate(store, "digest-0", "digest-1", T0)

    statements = await traced(store, lambda: rotate(store, "digest-0", "d-2", T0))

    assert len(statements) == 1


async def test_create_family_is_one_statement(store: SQLiteStore) -> None:
    """Creating a family is one INSERT."""
    statements = await traced(store, lambda: create(store))

    assert len(statements) == 1
    assert statements[0].lstrip().startswith("INSERT INTO tokenpair_families")


async def test_reuse_is_decided_under_the_write_lock(store: SQLiteStore) -> None:
    """A token that does not rotate is classified in BEGIN IMMEDIATE."""
    await create(store)
    await rotate(store, "digest-0", "digest-1", T0, grace=0)

    statements = await traced(
        store, lambda: rotate(store, "digest-0", "d-2", T0, grace=0)
    )

    assert statements[1] == "BEGIN IMMEDIATE"
    assert statements[-1] == "COMMIT"


# -- concurrency -----------------------------------------------------------------


async def race(
    stores: list[SQLiteStore], count: int, grace: float
) -> Counter[RotationStatus]:
    statuses: Counter[RotationStatus] = Counter()

    async def attempt(index: int) -> None:
        store = stores[index % len(stores)]
        result = await rotate(store, "digest-0", f"successor-{index}", T0, grace=grace)
        statuses[result.status] += 1

    async with anyio.create_task_group() as group:
        for index in range(count):
            group.start_soon(attempt, index)
    return statuses


async def test_two_stores_on_one_file_rotate_exactly_once(db_path: Path) -> None:
    """100 concurrent rotations of one token through two stores: one wins,
    the first loser detects reuse, the rest find the family revoked."""
    async with SQLiteStore(db_path) as first, SQLiteStore(db_path) as second:
        await create(first)

        statuses = await race([first, second], 100, grace=0)

        assert statuses == {
            RotationStatus.ROTATED: 1,
            RotationStatus.REUSED: 1,
            RotationStatus.REVOKED: 98,
        }
        state = await second.get_family(FAMILY)
        assert state is not None
        assert state.revoked_at == T0
        assert state.generation == 1


async def test_concurrent_retries_within_grace_all_apply(db_path: Path) -> None:
    """Inside the grace window every concurrent attempt but one is a retry,
    and each one is applied: the generation counts all of them."""
    async with SQLiteStore(db_path) as first, SQLiteStore(db_path) as second:
        await create(first)

        statuses = await race([first, second], 100, grace=GRACE)

        assert statuses == {RotationStatus.ROTATED: 1, RotationStatus.RETRIED: 99}
        state = await first.get_family(FAMILY)
        assert state is not None
        assert state.generation == 100
        assert state.previous == "digest-0"
        assert state.revoked_at is None


_RACER = textwrap.dedent(
    """
    import asyncio, json, sys
    from tokenpair import Rotation
    from tokenpair_sqlite import SQLiteStore

    async def main(path, tag):
        async with SQLiteStore(path) as store:
            print("ready", flush=True)
            sys.stdin.readline()
            results = await asyncio.gather(*(
                store.rotate(Rotation(
                    "family-0001", "digest-0", f"{tag}-{i}", 1000.0, 100.0, 0.0
                ))
                for i in range(50)
            ))
        print(json.dumps([r.status.value for r in results]), flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def test_two_processes_on_one_file_rotate_exactly_once(db_path: Path) -> None:
    """Two processes, 50 concurrent rotations each, released together: one
    ROTATED in all."""

    async def prepare() -> None:
        async with SQLiteStore(db_path) as store:
            await create(store)

    asyncio.run(prepare())
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(db_path), tag],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    try:
        for racer in racers:
            assert racer.stdout is not None
            assert racer.stdout.readline().strip() == "ready"
        for racer in racers:
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        outputs = [racer.communicate(timeout=60)[0] for racer in racers]
    finally:
        for racer in racers:
            racer.kill()
            racer.wait()

    assert [racer.returncode for racer in racers] == [0, 0]
    statuses = Counter(s for out in outputs for s in json.loads(out))
    assert statuses == {"rotated": 1, "reused": 1, "revoked": 98}


# -- revocation and cut-offs -----------------------------------------------------


async def test_revoke_family_is_idempotent_and_leaves_a_tombstone(
    store: SQLiteStore,
) -> None:
    """Revoking twice keeps the first time; unknown ids are no error; the
    record stays so a later attempt reads as revoked."""
    await create(store)

    await store.revoke_family(FAMILY, T0 + 1)
    await store.revoke_family(FAMILY, T0 + 2)
    await store.revoke_family("no-such-family", T0)

    state = await store.get_family(FAMILY)
    assert state is not None
    assert state.revoked_at == T0 + 1
    assert (await rotate(store, "digest-0", "d-1", T0 + 3)).status is (
        RotationStatus.REVOKED
    )


async def test_get_family_reads_every_field(store: SQLiteStore) -> None:
    """get_family returns the record as created, with floats as floats."""
    await create(store, family_expires_at=T0 + 500)

    state = await store.get_family(FAMILY)

    assert state is not None
    assert state.family_id == FAMILY
    assert state.subject == "alice"
    assert state.user_data == '{"sub": "alice"}'
    assert (state.current, state.previous) == ("digest-0", None)
    assert (state.created_at, state.rotated_at) == (T0, None)
    assert (state.expires_at, state.family_expires_at) == (T0 + TTL, T0 + 500)
    assert (state.revoked_at, state.generation) == (None, 0)
    assert isinstance(state.expires_at, float)


async def test_revoke_subject_counts_only_live_families(store: SQLiteStore) -> None:
    """Live families of the subject are revoked and counted; revoked, expired
    and other subjects' families are left alone."""
    await create(store, "alice-live-1")
    await create(store, "alice-live-2")
    await create(store, "alice-revoked")
    await store.revoke_family("alice-revoked", T0)
    await create(store, "alice-expired", expires_at=T0 + 1)
    await create(store, "bob-live-1", subject="bob")

    revoked = await store.revoke_subject("alice", T0 + 5, T0 + 50)

    assert revoked == 2
    for family_id, revoked_at in [
        ("alice-live-1", T0 + 5),
        ("alice-live-2", T0 + 5),
        ("alice-revoked", T0),
        ("alice-expired", None),
        ("bob-live-1", None),
    ]:
        state = await store.get_family(family_id)
        assert state is not None
        assert state.revoked_at == revoked_at, family_id
    assert await store.revoke_subject("alice", T0 + 6, T0 + 50) == 0


@pytest.mark.parametrize("created_at", [99.5, 100.0])
async def test_a_login_racing_logout_everywhere_arrives_revoked(
    store: SQLiteStore, created_at: float
) -> None:
    """A family stamped at or before the subject's remembered cut-off is
    stored revoked at the cut-off; one stamped after it, or for another
    subject, is not."""
    await store.revoke_subject("alice", 100.0, 160.0)

    await create(store, "alice-racing", now=created_at, expires_at=200.0)
    await create(store, "alice-after", now=100.001, expires_at=200.0)
    await create(store, "bob-racing", subject="bob", now=99.5, expires_at=200.0)

    racing = await rotate(
        store, "digest-0", "digest-1", 101.0, family_id="alice-racing"
    )
    assert racing.status is RotationStatus.REVOKED
    state = await store.get_family("alice-racing")
    assert state is not None
    assert state.revoked_at == 100.0
    for family_id in ("alice-after", "bob-racing"):
        result = await rotate(store, "digest-0", "digest-1", 101.0, family_id=family_id)
        assert result.status is RotationStatus.ROTATED, family_id


async def test_a_forgotten_cutoff_revokes_no_new_family(store: SQLiteStore) -> None:
    """A cut-off that was never remembered (remember_until not after it)
    revokes nothing created later."""
    await store.revoke_subject("alice", 100.0, 100.0)

    await create(store, now=99.5, expires_at=200.0)

    result = await rotate(store, "digest-0", "digest-1", 101.0)
    assert result.status is RotationStatus.ROTATED


async def test_subject_cutoff_is_remembered_until_its_end(
    store: SQLiteStore,
) -> None:
    """The cut-off is readable strictly before remember_until, and a later
    revocation replaces it."""
    assert await store.subject_revoked_at("alice", T0) is None
    await store.revoke_subject("alice", T0, T0 + 50)

    assert await store.subject_revoked_at("alice", T0 + 49.9) == T0
    assert await store.subject_revoked_at("alice", T0 + 50) is None
    assert await store.subject_revoked_at("bob", T0) is None

    await store.revoke_subject("alice", T0 + 10, T0 + 80)
    assert await store.subject_revoked_at("alice", T0 + 60) == T0 + 10


async def test_a_failed_transaction_rolls_back_whole(
    store: SQLiteStore, db_path: Path
) -> None:
    """If the cut-off cannot be written, no family is revoked either, and
    the next transaction starts cleanly."""
    await create(store)
    with raw(db_path) as conn:
        conn.execute("DROP TABLE tokenpair_subject_cutoffs")

    with pytest.raises(StoreError):
        await store.revoke_subject("alice", T0 + 1, T0 + 50)

    state = await store.get_family(FAMILY)
    assert state is not None
    assert state.revoked_at is None
    assert (await rotate(store, "digest-9", "d-1", T0 + 2)).status is (
        RotationStatus.REUSED
    )


async def test_cancelling_a_waiting_transaction_leaves_none_open(
    store: SQLiteStore, db_path: Path
) -> None:
    """A transaction cancelled while its BEGIN waits for the lock is rolled
    back once the BEGIN runs, and the store's next transaction works."""
    await create(store)
    with raw(db_path) as conn:
        conn.execute("BEGIN IMMEDIATE")
        async with anyio.create_task_group() as group:
            scope = anyio.CancelScope()

            async def revoke() -> None:
                with scope:
                    await store.revoke_subject("alice", T0 + 1, T0 + 50)

            group.start_soon(revoke)
            await anyio.wait_all_tasks_blocked()
            scope.cancel()
            await anyio.wait_all_tasks_blocked()
            conn.execute("ROLLBACK")

    assert scope.cancelled_caught
    state = await store.get_family(FAMILY)
    assert state is not None
    assert state.revoked_at is None
    assert await store.revoke_subject("alice", T0 + 2, T0 + 50) == 1


# -- purging ---------------------------------------------------------------------


async def test_purge_removes_expired_families_and_forgotten_cutoffs(
    store: SQLiteStore,
) -> None:
    """Families with expires_at <= now go, tombstones included; cut-offs go
    once remember_until has come; the count covers both."""
    await create(store, "expired-at-now", expires_at=T0 + 10)
    await create(store, "revoked-expired", expires_at=T0 + 5)
    await store.revoke_family("revoked-expired", T0)
    await create(store, "revoked-alive", expires_at=T0 + 20)
    await store.revoke_family("revoked-alive", T0)
    await create(store, "alive", expires_at=T0 + 10.001)
    await store.revoke_subject("gone", T0, T0 + 10)
    await store.revoke_subject("kept", T0, T0 + 11)

    purged = await store.purge_expired(T0 + 10)

    assert purged == 3
    assert await store.get_family("expired-at-now") is None
    assert await store.get_family("revoked-expired") is None
    assert await store.get_family("revoked-alive") is not None
    assert await store.get_family("alive") is not None
    assert await store.subject_revoked_at("kept", T0 + 10) == T0
    result = await rotate(store, "digest-0", "d-1", T0 + 10, family_id="alive")
    assert result.status is RotationStatus.ROTATED
    assert (await rotate(store, "digest-0", "d-1", T0 + 11)).status is (
        RotationStatus.UNKNOWN
    )
    assert await store.purge_expired(T0 + 10) == 0


async def test_purge_deletes_in_batches_until_done(store: SQLiteStore) -> None:
    """More expired rows than one batch are all deleted."""
    for index in range(2_345):
        await create(store, f"family-{index:05d}", expires_at=T0 + 1)

    assert await store.purge_expired(T0 + 1) == 2_345
    assert await store.purge_expired(T0 + 1) == 0


# -- failures --------------------------------------------------------------------


async def test_a_family_id_clash_is_a_store_error(store: SQLiteStore) -> None:
    """create_family refuses a taken id, with the driver error chained."""
    await create(store)

    with pytest.raises(StoreError, match="already taken") as caught:
        await create(store, digest="digest-secret")

    assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
    assert "digest-secret" not in str(caught.value)


async def test_an_unopenable_path_is_a_store_error(tmp_path: Path) -> None:
    """A file in a missing directory cannot be created."""
    store = SQLiteStore(tmp_path / "missing" / "tokens.db")

    with pytest.raises(StoreError) as caught:
        await store.setup()

    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    with pytest.raises(StoreError):
        await create(store)


async def test_a_corrupt_file_is_a_store_error(db_path: Path) -> None:
    """A file that is not a database fails at setup with the cause chained."""
    await anyio.Path(db_path).write_bytes(b"not an SQLite database, " * 100)
    store = SQLiteStore(db_path)

    with pytest.raises(StoreError) as caught:
        await store.setup()

    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


_FAILED_OPENS = textwrap.dedent(
    """
    import asyncio, sys
    from tokenpair import StoreError
    from tokenpair_sqlite import SQLiteStore

    async def open_once(path):
        try:
            await SQLiteStore(path).setup()
        except StoreError:
            print("refused", flush=True)

    # A loop of its own for each attempt: a thread left behind by a failed
    # open reports back to a loop that asyncio.run has closed by then.
    for path in sys.argv[1:]:
        for _ in range(5):
            asyncio.run(open_once(path))
    """
)


def test_a_failed_open_leaves_no_thread_behind(tmp_path: Path) -> None:
    """Every failure path of setup (connecting to a directory, to a file
    under a file, or to a file that is no database) ends the connection's
    thread before it returns, so no thread dies later on a closed loop."""
    (tmp_path / "plain").write_text("a file, not a directory")
    (tmp_path / "corrupt.db").write_bytes(b"not an SQLite database, " * 100)
    paths = [str(tmp_path), str(tmp_path / "plain" / "t.db")]
    paths.append(str(tmp_path / "corrupt.db"))
    runs = [
        subprocess.Popen(
            [sys.executable, "-X", "dev", "-c", _FAILED_OPENS, *paths],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(10)
    ]
    try:
        outputs = [run.communicate(timeout=60) for run in runs]
    finally:
        for run in runs:
            run.kill()
            run.wait()

    for stdout, stderr in outputs:
        assert stdout.split() == ["refused"] * 15
        assert "Exception in thread" not in stderr
        assert "Event loop is closed" not in stderr


async def test_a_lock_held_too_long_is_a_store_error(db_path: Path) -> None:
    """Another writer holding the lock past busy_timeout fails the rotation,
    and the message names the cause but no digest."""
    async with SQLiteStore(db_path, busy_timeout=0.05) as store:
        await create(store, digest="digest-secret")
        with raw(db_path) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                with pytest.raises(StoreError, match="SQLITE_BUSY") as caught:
                    await rotate(store, "digest-secret", "digest-next", T0)
            finally:
                conn.execute("ROLLBACK")

        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        assert "digest" not in str(caught.value)
        result = await rotate(store, "digest-secret", "digest-next", T0)
        assert result.status is RotationStatus.ROTATED


async def test_a_driver_error_during_rotation_hides_the_digests(
    store: SQLiteStore, db_path: Path
) -> None:
    """A failing statement becomes a StoreError with no digest in it."""
    await create(store, digest="digest-secret")
    with raw(db_path) as conn:
        conn.execute("DROP TABLE tokenpair_families")

    with pytest.raises(StoreError) as caught:
        await rotate(store, "digest-secret", "digest-next", T0)

    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert "digest" not in str(caught.value)
    assert "digest" not in repr(caught.value)


# -- configuration ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///relative.db", "relative.db"),
        ("sqlite:///dir/relative.db", "dir/relative.db"),
        ("sqlite:////abs/path.db", "/abs/path.db"),
        ("sqlite:////abs/with%20space.db", "/abs/with space.db"),
    ],
)
def test_store_from_url_paths(url: str, path: str) -> None:
    """One slash after sqlite:// starts a relative path, two an absolute."""
    assert store_from_url(url).path == path


def test_store_from_url_does_not_open_the_file(tmp_path: Path) -> None:
    """Making the store touches nothing on disk."""
    store_from_url(f"sqlite:///{tmp_path}/tokens.db")

    assert list(tmp_path.iterdir()) == []


async def test_store_from_url_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative URL path is taken from the working directory, and options
    in the query apply."""
    monkeypatch.chdir(tmp_path)
    async with store_from_url("sqlite:///rel.db?table_prefix=x_&busy_timeout=1") as s:
        await create(s)
    with raw(tmp_path / "rel.db") as conn:
        assert conn.execute("SELECT count(*) FROM x_families").fetchone() == (1,)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///:memory:", "memory"),
        ("sqlite://", "must name a database file"),
        ("sqlite:///", "must name a database file"),
        ("sqlite:", "must name a database file"),
        ("sqlite:relative.db", "names no host"),
        ("sqlite://host/tokens.db", "names no host"),
        ("sqlite://[/x.db", "names no host"),
        ("sqlite://[::1/x.db", "names no host"),
        ("postgres:///tokens.db", "starts with sqlite:///"),
        ("sqlite:///tokens.db#frag", "fragment"),
        ("sqlite:///tokens.db?mode=memory", "unknown SQLite store URL option"),
        ("sqlite:///tokens.db?busy_timeout=soon", "number of seconds"),
        ("sqlite:///tokens.db?busy_timeout=-1", "busy_timeout"),
        ("sqlite:///tokens.db?table_prefix=a;b", "table_prefix"),
        ("sqlite:///t.db?busy_timeout=1&busy_timeout=2", "repeated"),
    ],
)
def test_bad_urls_are_configuration_errors(url: str, message: str) -> None:
    """Every malformed URL is refused with a message saying why."""
    with pytest.raises(ConfigurationError, match=message):
        store_from_url(url)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((":memory:",), {}, "in-memory"),
        (("",), {}, "in-memory"),
        (("t.db",), {"table_prefix": "1x"}, "table_prefix"),
        (("t.db",), {"table_prefix": "x y"}, "table_prefix"),
        (("t.db",), {"busy_timeout": -0.5}, "busy_timeout"),
        (("t.db",), {"busy_timeout": float("nan")}, "busy_timeout"),
    ],
)
def test_bad_arguments_are_configuration_errors(
    args: tuple[str], kwargs: dict[str, object], message: str
) -> None:
    """The constructor checks what it is given before anything opens."""
    with pytest.raises(ConfigurationError, match=message):
        SQLiteStore(*args, **kwargs)  # type: ignore[arg-type]


def test_repr_shows_the_path_only() -> None:
    """The repr names the file and nothing else."""
    assert repr(SQLiteStore("tokens.db")) == "SQLiteStore('tokens.db')"


# -- the contract suite ----------------------------------------------------------


class TestSQLiteContract(StoreContract):
    """The behaviour every store shows, on one real file per test."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    async def store_factory(
        self, tmp_path: Path
    ) -> AsyncIterator[Callable[[], Awaitable[Store]]]:
        stores: list[SQLiteStore] = []

        async def make() -> Store:
            store = SQLiteStore(tmp_path / "contract.db")
            await store.setup()
            stores.append(store)
            return store

        yield make
        for store in stores:
            await store.aclose()
