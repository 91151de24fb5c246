"""The SQLite store, on aiosqlite.

aiosqlite runs each connection in a thread of its own and hands results back
through asyncio futures, so this store works under asyncio only (including
anyio on its asyncio backend), never under trio.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

import aiosqlite
import anyio

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

__all__ = ["SQLiteStore", "store_from_url"]

#: RETURNING (3.35) carries the one-statement rotation.
_MIN_SQLITE: Final = (3, 35, 0)
_TABLE_PREFIX: Final = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*)?")
#: Rows deleted per statement by purge_expired, so that rotations from other
#: connections get the write lock between batches.
_PURGE_BATCH: Final = 1000
_URL_OPTIONS: Final = frozenset({"table_prefix", "busy_timeout"})
_IN_MEMORY: Final = frozenset({"", ":memory:"})


# SQL texts with {families} and {cutoffs} for the table names, which are made
# from a prefix checked against _TABLE_PREFIX; values are always bound.
_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS {families} (
        id TEXT NOT NULL PRIMARY KEY,
        subject TEXT NOT NULL,
        user_data TEXT NOT NULL,
        "current" TEXT NOT NULL,
        previous TEXT,
        created_at REAL NOT NULL,
        rotated_at REAL,
        expires_at REAL NOT NULL,
        family_expires_at REAL,
        revoked_at REAL,
        generation INTEGER NOT NULL,
        rotated_generation INTEGER NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS {families}_subject ON {families} (subject)",
    "CREATE INDEX IF NOT EXISTS {families}_expires_at ON {families} (expires_at)",
    """CREATE TABLE IF NOT EXISTS {cutoffs} (
        subject TEXT NOT NULL PRIMARY KEY,
        revoked_at REAL NOT NULL,
        remember_until REAL NOT NULL
    )""",
)
# ``rotated_generation`` is the generation the last case-4 rotation produced.
# RETURNING sees only the new row, and a retry at the same clock reading
# leaves every other column as a rotation would; comparing the generations
# tells ROTATED from RETRIED.
# A family created at or before its subject's remembered cut-off (a login
# that raced a logout everywhere) is stored revoked at the cut-off, in the
# same statement, so no revoke_subject can fall between check and insert.
_CREATE: Final = """INSERT INTO {families} (
    id, subject, user_data, "current", previous, created_at, rotated_at,
    expires_at, family_expires_at, revoked_at, generation, rotated_generation
) SELECT :family_id, :subject, :user_data, :token, NULL, :created_at, NULL,
    :expires_at, :family_expires_at,
    (SELECT revoked_at FROM {cutoffs} WHERE subject = :subject
        AND revoked_at >= :created_at AND remember_until > revoked_at),
    0, 0"""
# Cases 4 and 5 of Store.rotate in one statement; SET expressions read the
# row as it was before the update.
_ROTATE: Final = """UPDATE {families} SET
    previous = CASE WHEN "current" = :presented THEN "current" ELSE previous END,
    rotated_at = CASE WHEN "current" = :presented THEN :now ELSE rotated_at END,
    rotated_generation = CASE WHEN "current" = :presented
        THEN generation + 1 ELSE rotated_generation END,
    "current" = :successor,
    expires_at = CASE WHEN family_expires_at < :renewed
        THEN family_expires_at ELSE :renewed END,
    user_data = COALESCE(:user_data, user_data),
    generation = generation + 1
WHERE id = :family_id AND revoked_at IS NULL AND expires_at > :now
    AND ("current" = :presented
        OR (:grace > 0 AND previous = :presented AND :now < rotated_at + :grace))
RETURNING subject, user_data, expires_at, generation = rotated_generation"""
# Case 4 without a successor: the family is retired.
_RETIRE: Final = """UPDATE {families} SET
    revoked_at = :now,
    user_data = COALESCE(:user_data, user_data),
    generation = generation + 1
WHERE id = :family_id AND revoked_at IS NULL AND expires_at > :now
    AND "current" = :presented
RETURNING subject, user_data, expires_at, 1"""
_INSPECT: Final = "SELECT subject, revoked_at, expires_at FROM {families} WHERE id = ?"
_REVOKE_REUSED: Final = "UPDATE {families} SET revoked_at = ? WHERE id = ?"
_GET: Final = """SELECT id, subject, user_data, "current", previous, created_at,
    rotated_at, expires_at, family_expires_at, revoked_at, generation
FROM {families} WHERE id = ?"""
_REVOKE: Final = """UPDATE {families} SET revoked_at = ?
WHERE id = ? AND revoked_at IS NULL"""
_REVOKE_SUBJECT: Final = """UPDATE {families} SET revoked_at = :now
WHERE subject = :subject AND revoked_at IS NULL AND expires_at > :now"""
_REMEMBER_SUBJECT: Final = """INSERT INTO {cutoffs}
    (subject, revoked_at, remember_until) VALUES (?, ?, ?)
ON CONFLICT (subject) DO UPDATE SET
    revoked_at = excluded.revoked_at, remember_until = excluded.remember_until"""
_SUBJECT_CUTOFF: Final = """SELECT revoked_at FROM {cutoffs}
WHERE subject = ? AND remember_until > ?"""
_PURGE_FAMILIES: Final = """DELETE FROM {families} WHERE id IN (
    SELECT id FROM {families} WHERE expires_at <= ? LIMIT ?)"""
_PURGE_CUTOFFS: Final = """DELETE FROM {cutoffs} WHERE subject IN (
    SELECT subject FROM {cutoffs} WHERE remember_until <= ? LIMIT ?)"""


@dataclass(frozen=True, slots=True)
class _Statements:
    """Every SQL text the store runs, made once per table prefix so that the
    connection's statement cache keeps each one prepared."""

    schema: tuple[str, ...]
    create: str
    rotate: str
    retire: str
    inspect: str
    revoke_reused: str
    get: str
    revoke: str
    revoke_subject: str
    remember_subject: str
    subject_cutoff: str
    purge_families: str
    purge_cutoffs: str

    @classmethod
    def for_prefix(cls, prefix: str) -> _Statements:
        names = {"families": f"{prefix}families", "cutoffs": f"{prefix}subject_cutoffs"}
        return cls(
            schema=tuple(sql.format_map(names) for sql in _SCHEMA),
            create=_CREATE.format_map(names),
            rotate=_ROTATE.format_map(names),
            retire=_RETIRE.format_map(names),
            inspect=_INSPECT.format_map(names),
            revoke_reused=_REVOKE_REUSED.format_map(names),
            get=_GET.format_map(names),
            revoke=_REVOKE.format_map(names),
            revoke_subject=_REVOKE_SUBJECT.format_map(names),
            remember_subject=_REMEMBER_SUBJECT.format_map(names),
            subject_cutoff=_SUBJECT_CUTOFF.format_map(names),
            purge_families=_PURGE_FAMILIES.format_map(names),
            purge_cutoffs=_PURGE_CUTOFFS.format_map(names),
        )


def _describe(exc: BaseException) -> str:
    # SQLite's own messages name tables and columns, never bound values, so
    # no digest can leak through them.
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", None)
        return f"{name}: {exc}" if name else f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def _translate(action: str) -> Iterator[None]:
    try:
        yield
    # aiosqlite raises ValueError for a connection closed under a call.
    except (sqlite3.Error, OSError, ValueError) as exc:
        raise StoreError(f"SQLite store could not {action} ({_describe(exc)})") from exc


def _require_asyncio() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise ConfigurationError(
            "SQLiteStore runs on asyncio only (aiosqlite hands results back "
            "through asyncio futures); use it under asyncio or anyio's asyncio "
            "backend"
        ) from None


async def _close_quietly(conn: aiosqlite.Connection) -> None:
    """Close ``conn`` and wait for its thread to end, whatever state it is in.

    When aiosqlite fails to connect it queues a stop for its thread without
    waiting for it; the thread then reports back to an event loop that may be
    closed by the time it gets there, and dies with "Event loop is closed".
    Joining the thread here keeps it from outliving a failed setup.
    """
    with anyio.CancelScope(shield=True):
        with contextlib.suppress(sqlite3.Error, OSError, ValueError):
            await conn.close()
        # aiosqlite 0.21 moved the thread from the Connection itself (a
        # Thread subclass until 0.20) to a private attribute.
        thread: object = getattr(conn, "_thread", conn)
        if isinstance(thread, threading.Thread) and thread.ident is not None:
            await anyio.to_thread.run_sync(thread.join)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _rotated(row: Any) -> RotationResult:
    subject, user_data, expires_at, rotated = row
    return RotationResult(
        RotationStatus.ROTATED if rotated else RotationStatus.RETRIED,
        subject=subject,
        user_data=user_data,
        # SQLite keeps whole REAL values as integers on disk, and RETURNING
        # hands them back unconverted.
        expires_at=float(expires_at),
    )


def _family_state(row: Any) -> FamilyState:
    (
        family_id,
        subject,
        user_data,
        current,
        previous,
        created_at,
        rotated_at,
        expires_at,
        family_expires_at,
        revoked_at,
        generation,
    ) = row
    return FamilyState(
        family_id=family_id,
        subject=subject,
        user_data=user_data,
        current=current,
        previous=previous,
        created_at=float(created_at),
        rotated_at=_optional_float(rotated_at),
        expires_at=float(expires_at),
        family_expires_at=_optional_float(family_expires_at),
        revoked_at=_optional_float(revoked_at),
        generation=int(generation),
    )


class SQLiteStore(Store):
    """A store in one SQLite database file, in WAL mode.

    Any number of stores, in one process or many, may share a file: every
    rotation is decided inside SQLite's write lock, so a refresh token is
    consumed exactly once whoever presents it. The common rotation is one
    ``UPDATE ... RETURNING`` statement; only a token that does not rotate
    takes a short ``BEGIN IMMEDIATE`` transaction to find out why.

    The store runs on asyncio only (aiosqlite's threads report back through
    asyncio futures). It opens two connections on :meth:`setup`, or lazily
    on first use: one for single statements, one for transactions. Close it
    with :meth:`aclose` or ``async with``: an open connection's thread can
    keep the process from exiting.

    :param path: the database file; created if missing, its directory must
        exist. ``":memory:"`` is refused, as two connections cannot share it.
    :param table_prefix: prepended to the table and index names.
    :param busy_timeout: seconds a statement waits for another connection's
        write lock before failing with :class:`~tokenpair.StoreError`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table_prefix: str = "tokenpair_",
        busy_timeout: float = 5.0,
    ) -> None:
        path = os.fspath(path)
        if path in _IN_MEMORY:
            raise ConfigurationError(
                "SQLiteStore needs a database file: an in-memory database is "
                "private to one connection, and the store opens two"
            )
        if not _TABLE_PREFIX.fullmatch(table_prefix):
            raise ConfigurationError(
                "table_prefix may hold only ASCII letters, digits and "
                "underscores, and may not start with a digit"
            )
        if not (math.isfinite(busy_timeout) and busy_timeout >= 0):
            raise ConfigurationError("busy_timeout must be a finite number >= 0")
        self._path = path
        self._busy_timeout = float(busy_timeout)
        self._sql = _Statements.for_prefix(table_prefix)
        #: (statements, transactions); None until opened.
        self._conns: tuple[aiosqlite.Connection, aiosqlite.Connection] | None = None
        self._open_lock = asyncio.Lock()
        # Orders transactions on the shared transaction connection; the
        # guard against other connections is SQLite's write lock.
        self._tx_lock = asyncio.Lock()

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._path!r})"

    # -- connections -------------------------------------------------------

    async def setup(self) -> None:
        """Open the connections, switch the file to WAL and create the
        tables and indexes. Idempotent; other methods call it when needed."""
        if self._conns is not None:
            return
        _require_asyncio()
        async with self._open_lock:
            if self._conns is None:
                with _translate("open the database"):
                    self._conns = await self._open()

    async def aclose(self) -> None:
        """Close both connections, after a transaction under way. A later
        call opens them again."""
        async with self._open_lock, self._tx_lock:
            conns, self._conns = self._conns, None
        if conns is not None:
            with _translate("close the database"):
                for conn in conns:
                    await conn.close()

    async def _open(self) -> tuple[aiosqlite.Connection, aiosqlite.Connection]:
        if sqlite3.sqlite_version_info < _MIN_SQLITE:
            raise ConfigurationError(
                f"SQLiteStore needs SQLite 3.35 or newer, this Python has "
                f"{sqlite3.sqlite_version}"
            )
        async with contextlib.AsyncExitStack() as stack:
            db = await self._connect()
            stack.push_async_callback(_close_quietly, db)
            tx = await self._connect()
            stack.push_async_callback(_close_quietly, tx)
            rows = list(await db.execute_fetchall("PRAGMA journal_mode=WAL"))
            mode = str(rows[0][0]).lower() if rows else ""
            if mode != "wal":
                raise StoreError(
                    f"SQLite store could not switch the database to WAL mode "
                    f"(journal mode is {mode or 'unknown'})"
                )
            async with self._transaction(tx):
                for statement in self._sql.schema:
                    await tx.execute(statement)
            stack.pop_all()
        return db, tx

    async def _connect(self) -> aiosqlite.Connection:
        # isolation_level=None: autocommit, so each statement is its own
        # transaction and explicit BEGIN IMMEDIATE means what it says.
        conn = aiosqlite.connect(
            self._path, timeout=self._busy_timeout, isolation_level=None
        )
        try:
            await conn
            await conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            await _close_quietly(conn)
            raise
        return conn

    async def _connections(
        self,
    ) -> tuple[aiosqlite.Connection, aiosqlite.Connection]:
        conns = self._conns
        if conns is None:
            await self.setup()
            conns = self._conns
            if conns is None:  # closed again while opening
                raise StoreError("SQLite store was closed while in use")
        return conns

    @contextlib.asynccontextmanager
    async def _transaction(
        self, tx: aiosqlite.Connection
    ) -> AsyncIterator[aiosqlite.Connection]:
        async with self._tx_lock:
            try:
                await tx.execute("BEGIN IMMEDIATE")
                yield tx
                await tx.execute("COMMIT")
            except BaseException:
                # Also on cancellation: a queued BEGIN still runs in
                # aiosqlite's thread, and the ROLLBACK queued behind it
                # undoes it before the next transaction starts.
                with anyio.CancelScope(shield=True):
                    await self._rollback(tx)
                raise

    async def _rollback(self, tx: aiosqlite.Connection) -> None:
        try:
            await tx.execute("ROLLBACK")
            return
        except sqlite3.Error:
            # Also "no transaction is active", when BEGIN itself failed.
            pass
        except ValueError:  # closed already
            return
        if tx.in_transaction:
            # A connection stuck in a transaction would fail every later
            # BEGIN; drop both and let the next call open fresh ones.
            conns, self._conns = self._conns, None
            if conns is not None:
                for conn in conns:
                    await _close_quietly(conn)

    # -- Store -------------------------------------------------------------

    async def create_family(self, family: NewFamily) -> None:
        db, _ = await self._connections()
        try:
            with _translate("create a family"):
                await db.execute_fetchall(
                    self._sql.create,
                    {
                        "family_id": family.family_id,
                        "subject": family.subject,
                        "user_data": family.user_data,
                        "token": family.token,
                        "created_at": family.created_at,
                        "expires_at": family.expires_at,
                        "family_expires_at": family.family_expires_at,
                    },
                )
        except StoreError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise StoreError(
                    "SQLite store could not create a family: the family id "
                    "is already taken"
                ) from exc.__cause__
            raise

    async def rotate(self, rotation: Rotation) -> RotationResult:
        """Rotate as :meth:`tokenpair.Store.rotate` states: one conditional
        ``UPDATE ... RETURNING`` for cases 4 and 5; when it matches nothing,
        a ``BEGIN IMMEDIATE`` transaction tells cases 1, 2, 3 and 6 apart."""
        db, tx = await self._connections()
        sql, params = self._rotation(rotation)
        with _translate("rotate a refresh token"):
            rows = list(await db.execute_fetchall(sql, params))
            if rows:
                return _rotated(rows[0])
            async with self._transaction(tx):
                # Run the rule again under the write lock: the family may
                # have changed since the statement above.
                rows = list(await tx.execute_fetchall(sql, params))
                if rows:
                    return _rotated(rows[0])
                rows = list(
                    await tx.execute_fetchall(self._sql.inspect, (rotation.family_id,))
                )
                if not rows:
                    return RotationResult(RotationStatus.UNKNOWN)
                subject, revoked_at, expires_at = rows[0]
                if revoked_at is not None:
                    return RotationResult(RotationStatus.REVOKED, subject=subject)
                if rotation.now >= expires_at:
                    return RotationResult(RotationStatus.EXPIRED, subject=subject)
                await tx.execute(
                    self._sql.revoke_reused, (rotation.now, rotation.family_id)
                )
                return RotationResult(RotationStatus.REUSED, subject=subject)

    def _rotation(self, rotation: Rotation) -> tuple[str, Mapping[str, object]]:
        if rotation.successor is None:
            return self._sql.retire, {
                "family_id": rotation.family_id,
                "presented": rotation.presented,
                "now": rotation.now,
                "user_data": rotation.user_data,
            }
        return self._sql.rotate, {
            "family_id": rotation.family_id,
            "presented": rotation.presented,
            "successor": rotation.successor,
            "now": rotation.now,
            "renewed": rotation.now + rotation.refresh_ttl,
            "grace": rotation.reuse_grace,
            "user_data": rotation.user_data,
        }

    async def get_family(self, family_id: str) -> FamilyState | None:
        db, _ = await self._connections()
        with _translate("read a family"):
            rows = list(await db.execute_fetchall(self._sql.get, (family_id,)))
        if not rows:
            return None
        return _family_state(rows[0])

    async def revoke_family(self, family_id: str, now: float) -> None:
        db, _ = await self._connections()
        with _translate("revoke a family"):
            await db.execute_fetchall(self._sql.revoke, (now, family_id))

    async def revoke_subject(
        self, subject: str, now: float, remember_until: float
    ) -> int:
        _, tx = await self._connections()
        with _translate("revoke a subject"):
            async with self._transaction(tx):
                async with tx.execute(
                    self._sql.revoke_subject, {"now": now, "subject": subject}
                ) as cursor:
                    revoked = cursor.rowcount
                await tx.execute(
                    self._sql.remember_subject, (subject, now, remember_until)
                )
        return revoked

    async def subject_revoked_at(self, subject: str, now: float) -> float | None:
        db, _ = await self._connections()
        with _translate("read a subject's cut-off"):
            rows = list(
                await db.execute_fetchall(self._sql.subject_cutoff, (subject, now))
            )
        return float(rows[0][0]) if rows else None

    async def purge_expired(self, now: float) -> int:
        """Delete families whose ``expires_at`` is at or before ``now``
        (revoked ones included) and subject cut-offs whose ``remember_until``
        has passed; return how many rows went.

        Deletes in batches of autocommit statements, so that rotations from
        other connections are not held up behind one long write."""
        db, _ = await self._connections()
        purged = 0
        with _translate("purge expired records"):
            for sql in (self._sql.purge_families, self._sql.purge_cutoffs):
                while True:
                    async with db.execute(sql, (now, _PURGE_BATCH)) as cursor:
                        deleted = cursor.rowcount
                    purged += deleted
                    if deleted < _PURGE_BATCH:
                        break
        return purged


def store_from_url(url: str) -> SQLiteStore:
    """Make a :class:`SQLiteStore` from ``sqlite:///relative/path.db`` or
    ``sqlite:////absolute/path.db``, without opening it.

    The query may set ``table_prefix`` and ``busy_timeout`` (seconds), as in
    ``sqlite:///tokens.db?busy_timeout=2``.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        # Unbalanced [brackets] in the host part; urlsplit's message would
        # quote the URL.
        raise ConfigurationError(
            "an SQLite store URL names no host: write sqlite:///relative.db or "
            "sqlite:////absolute/path.db"
        ) from None
    if parts.scheme != "sqlite":
        raise ConfigurationError(
            "an SQLite store URL starts with sqlite:/// (sqlite:///relative.db "
            "or sqlite:////absolute/path.db)"
        )
    if parts.netloc or (parts.path and not parts.path.startswith("/")):
        raise ConfigurationError(
            "an SQLite store URL names no host: write sqlite:///relative.db or "
            "sqlite:////absolute/path.db"
        )
    if parts.fragment:
        raise ConfigurationError("an SQLite store URL takes no #fragment")
    path = unquote(parts.path[1:])
    if path in _IN_MEMORY:
        raise ConfigurationError(
            "an SQLite store URL must name a database file; sqlite:///:memory: "
            "is refused because the store's two connections would each see "
            "their own empty database"
        )
    options: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in _URL_OPTIONS:
            raise ConfigurationError(
                f"unknown SQLite store URL option {name!r}; known: "
                f"{', '.join(sorted(_URL_OPTIONS))}"
            )
        if name in options:
            raise ConfigurationError(f"SQLite store URL option {name!r} is repeated")
        options[name] = value
    busy_timeout = 5.0
    if "busy_timeout" in options:
        try:
            busy_timeout = float(options["busy_timeout"])
        except ValueError:
            raise ConfigurationError(
                "SQLite store URL option busy_timeout must be a number of seconds"
            ) from None
    return SQLiteStore(
        path,
        table_prefix=options.get("table_prefix", "tokenpair_"),
        busy_timeout=busy_timeout,
    )
