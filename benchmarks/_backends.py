"""One class per store: making it, its round-trip floors, counting what it
sends to its server, its server's version, and what a family costs in it.

Every backend works in a namespace of its own (a fresh SQLite file, a Redis
key prefix, MongoDB collections named after the run) and removes it at the
end, so a run leaves nothing behind on a shared server.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import gc
import os
import secrets
import shutil
import sqlite3
import tempfile
import threading
import tracemalloc
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from tokenpair import MemoryStore, Store, TokenPairManager, open_store
from tokenpair._urls import mask_secret_options

__all__ = [
    "Backend",
    "MemoryBackend",
    "MongoBackend",
    "RedisBackend",
    "SQLiteBackend",
    "FloorCall",
    "mongo_driver_url",
    "redact_url",
    "sqlite_files",
]

FloorCall = Callable[[], Awaitable[object]]

#: Tasks that issue the families whose size is measured; only the total
#: matters there, so as many as keep the server busy.
_FILL_CONCURRENCY = 32


async def fill(manager: TokenPairManager, count: int, label: str) -> list[str]:
    """Issue ``count`` families, each of its own subject; return their
    refresh tokens in order."""
    tokens: list[str] = [""] * count
    cursor = iter(range(count))

    async def worker() -> None:
        for index in cursor:
            pair = await manager.generate_token_pair({"sub": f"{label}-{index:07d}"})
            tokens[index] = pair.refresh_token

    async with asyncio.TaskGroup() as group:
        for _ in range(min(_FILL_CONCURRENCY, max(count, 1))):
            group.create_task(worker())
    return tokens


async def rotate_all(manager: TokenPairManager, tokens: list[str]) -> None:
    cursor = iter(tokens)

    async def worker() -> None:
        for token in cursor:
            await manager.refresh(token)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(_FILL_CONCURRENCY, max(len(tokens), 1))):
            group.create_task(worker())


class Backend(abc.ABC):
    """A store under test, and what the benchmark needs to know about it."""

    name: str
    store: Store

    def __init__(self, secret: bytes, run_id: str) -> None:
        self.secret = secret
        self.run_id = run_id
        #: Things the counting pass could not count, said in the output.
        self.notes: list[str] = []

    @abc.abstractmethod
    async def open(self) -> None:
        """Make :attr:`store` (set up) and whatever the floors use."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close everything and remove this run's data."""

    def floors(self) -> dict[str, FloorCall]:
        """``write``: the one atomic round trip a rotation rests on;
        ``read``: one point read. Empty for stores without a server."""
        return {}

    async def server(self) -> dict[str, Any]:
        """Versions and settings of the engine behind the store."""
        return {}

    async def begin_count(self) -> None:  # noqa: B027 - optional hook
        """Start counting what reaches the server."""

    async def end_count(self) -> dict[str, dict[str, int]]:
        """Stop counting; return counts by kind (``round_trips``,
        ``server_commands``, ``statements``) and by command name."""
        return {}

    @abc.abstractmethod
    async def footprint(self, families: int) -> dict[str, Any]:
        """What a live family costs in this store, measured over
        ``families`` of them, as issued and after one rotation each."""


# -- memory ----------------------------------------------------------------


class MemoryBackend(Backend):
    name = "memory"

    async def open(self) -> None:
        self.store = MemoryStore()

    async def aclose(self) -> None:
        await self.store.aclose()

    async def server(self) -> dict[str, Any]:
        return {"engine": "in-process dict (tokenpair.MemoryStore)"}

    async def footprint(self, families: int) -> dict[str, Any]:
        if families <= 0:
            return {}
        store = MemoryStore()
        manager = TokenPairManager(self.secret, store=store)
        await fill(manager, 1, "warm")
        # Tokens the manager returns are dropped at once, so what stays
        # traced is what the store keeps.
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for index in range(families):
                await manager.generate_token_pair({"sub": f"fp-{index:07d}"})
            gc.collect()
            issued = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        # Rotation: measured on a second store whose tokens are kept from
        # before tracing starts, so that only what rotating adds is seen.
        rotating = TokenPairManager(self.secret, store=MemoryStore())
        tokens = await fill(rotating, families, "fp")
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for token in tokens:
                await rotating.refresh(token)
            gc.collect()
            added = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        return {
            "method": "tracemalloc: Python heap growth of a MemoryStore",
            "families": families,
            "bytes_per_family_issued": round(issued / families, 1),
            "bytes_per_family_rotated": round((issued + added) / families, 1),
        }


# -- SQLite ----------------------------------------------------------------


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, secret: bytes, run_id: str, path: str | None) -> None:
        super().__init__(secret, run_id)
        self._given = path
        self._tempdir: str | None = None
        self._created: list[Path] = []
        self._floor_conn: Any = None
        self._own_floor_conn = False
        self.floor_connection = ""
        self._trace_counts: Counter[str] = Counter()
        self._trace_lock = threading.Lock()
        self._traced: list[Any] = []

    @property
    def path(self) -> Path:
        return self._created[0]

    def _new_file(self, name: str) -> Path:
        if self._given is not None:
            given = Path(self._given).absolute()
            path = given if not self._created else _beside(given, name)
        else:
            if self._tempdir is None:
                self._tempdir = tempfile.mkdtemp(prefix="tokenpair-bench-")
            path = Path(self._tempdir) / f"{name}.db"
        if path.exists():
            raise FileExistsError(
                f"{path} exists; the benchmark writes a fresh database and "
                "removes it afterwards, so give a path that does not exist"
            )
        self._created.append(path)
        return path

    async def open(self) -> None:
        path = self._new_file("bench")
        self.store = open_store(_sqlite_url(path))
        await self.store.setup()
        # The floor runs on the store's own statement connection when it can
        # be reached: aiosqlite gives each connection a thread, and where the
        # scheduler puts that thread (next to the event loop or on an idle
        # core that must first wake up) can cost more than the statement.
        connections = self._connections()
        if connections:
            self._floor_conn = connections[0]
            self.floor_connection = "the store's statement connection"
        else:
            import aiosqlite

            self._floor_conn = await aiosqlite.connect(path, isolation_level=None)
            self._own_floor_conn = True
            await self._floor_conn.execute("PRAGMA synchronous=NORMAL")
            self.floor_connection = "a connection of its own"
            self.notes.append(
                "the SQLite floor ran on a connection of its own: the store does "
                "not expose its connections"
            )
        await self._floor_conn.execute(
            "CREATE TABLE bench_floor (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"
        )
        await self._floor_conn.execute("INSERT INTO bench_floor (id, n) VALUES (1, 0)")

    async def aclose(self) -> None:
        # Also after an opening that failed part way: the files go whatever
        # else was or was not made.
        try:
            if self._own_floor_conn:
                await self._floor_conn.close()
            store = getattr(self, "store", None)
            if store is not None:
                await store.aclose()
        finally:
            _remove(self._created, self._tempdir)

    def floors(self) -> dict[str, FloorCall]:
        conn = self._floor_conn
        write_sql = "UPDATE bench_floor SET n = n + 1 WHERE id = ? RETURNING n"
        read_sql = "SELECT n FROM bench_floor WHERE id = ?"

        async def write() -> object:
            return await conn.execute_fetchall(write_sql, (1,))

        async def read() -> object:
            return await conn.execute_fetchall(read_sql, (1,))

        return {"write": write, "read": read}

    async def server(self) -> dict[str, Any]:
        return {
            "version": sqlite3.sqlite_version,
            "journal_mode": "wal",
            "synchronous": "NORMAL",
            "filesystem": _filesystem(self.path),
            "floor_connection": self.floor_connection,
        }

    def _connections(self) -> list[Any]:
        # The store does not publish its connections; the statement count
        # reads the private attribute and says so when it is not there.
        conns = getattr(self.store, "_conns", None)
        if not isinstance(conns, tuple):
            return []
        return [conn for conn in conns if hasattr(conn, "set_trace_callback")]

    def _trace(self, statement: str) -> None:
        keyword = statement.lstrip().split(None, 1)[0].upper() if statement else ""
        if keyword == "BEGIN":
            keyword = " ".join(statement.split()[:2]).upper()
        with self._trace_lock:
            self._trace_counts[keyword] += 1

    async def begin_count(self) -> None:
        self._traced = self._connections()
        if not self._traced:
            self.notes.append(
                "SQLite statements were not counted: the store does not expose "
                "its connections"
            )
        self._trace_counts.clear()
        for conn in self._traced_connections():
            await conn.set_trace_callback(self._trace)

    def _traced_connections(self) -> list[Any]:
        if self._own_floor_conn:
            return [*self._traced, self._floor_conn]
        return list(self._traced)

    async def end_count(self) -> dict[str, dict[str, int]]:
        for conn in self._traced_connections():
            await conn.set_trace_callback(None)
        with self._trace_lock:
            counted = dict(self._trace_counts)
        return {"statements": counted} if self._traced else {}

    async def footprint(self, families: int) -> dict[str, Any]:
        if families <= 0:
            return {}
        import aiosqlite

        path = self._new_file("footprint")
        store = open_store(_sqlite_url(path))
        manager = TokenPairManager(self.secret, store=store)
        probe = await aiosqlite.connect(path, isolation_level=None)
        try:
            await fill(manager, 1, "warm")

            async def size() -> tuple[int, int]:
                await probe.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                rows = list(await probe.execute_fetchall("PRAGMA page_count"))
                page_size = list(await probe.execute_fetchall("PRAGMA page_size"))
                return int(rows[0][0]) * int(page_size[0][0]), path.stat().st_size

            pages_before, file_before = await size()
            tokens = await fill(manager, families, "fp")
            pages_issued, file_issued = await size()
            await rotate_all(manager, tokens)
            pages_rotated, _ = await size()
        finally:
            await probe.close()
            await store.aclose()
        return {
            "method": "page_count x page_size growth after a WAL checkpoint "
            "(table and both indexes)",
            "families": families,
            "bytes_per_family_issued": round(
                (pages_issued - pages_before) / families, 1
            ),
            "bytes_per_family_rotated": round(
                (pages_rotated - pages_before) / families, 1
            ),
            "file_bytes_per_family_issued": round(
                (file_issued - file_before) / families, 1
            ),
        }


#: What SQLite may keep beside a database; the run removes these too.
_COMPANION_SUFFIXES = ("", "-wal", "-shm", "-journal")


def _beside(given: Path, name: str) -> Path:
    """A further database file next to ``--sqlite-path``: ``bench.db`` and
    ``footprint`` make ``bench-footprint.db``."""
    return given.with_name(f"{given.stem}-{name}{given.suffix}")


def sqlite_files(given: str, *, footprint: bool) -> list[Path]:
    """Every file a run given ``--sqlite-path`` creates and deletes: the
    database, with ``footprint`` a second one beside it for the storage
    measurement, and what SQLite keeps beside each."""
    path = Path(given).absolute()
    databases = [path, _beside(path, "footprint")] if footprint else [path]
    return [Path(f"{db}{suffix}") for db in databases for suffix in _COMPANION_SUFFIXES]


def _remove(files: list[Path], directory: str | None) -> None:
    for path in files:
        for suffix in _COMPANION_SUFFIXES:
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").unlink()
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


def _filesystem(path: Path) -> str:
    """The type of the filesystem holding ``path`` (Linux), since fsync
    cost differs by orders of magnitude between tmpfs and a disk."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "unknown"
    target = str(path.resolve().parent)
    best, kind = "", "unknown"
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, fields[2]
    return kind


# -- Redis -----------------------------------------------------------------


def _with_query(url: str, **options: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in options]
    query += list(options.items())
    return parts._replace(query=urlencode(query, quote_via=quote)).geturl()


class RedisBackend(Backend):
    name = "redis"

    def __init__(self, secret: bytes, run_id: str, url: str) -> None:
        super().__init__(secret, run_id)
        self.url = url
        self.prefix = f"tokenpair-bench:{run_id}:"
        self._sent: Counter[str] = Counter()
        self._stats_before: dict[str, int] = {}
        self._stores: list[Store] = []
        #: The store's limit on calls at once, where it has one.
        self._permits: contextlib.AbstractAsyncContextManager[Any] | None = None

    @property
    def client(self) -> Any:
        client = getattr(self.store, "client", None)
        if client is None:
            raise RuntimeError("the Redis store does not expose its client")
        return client

    def _open(self, prefix: str) -> Store:
        store = open_store(_with_query(self.url, prefix=prefix))
        self._stores.append(store)
        return store

    async def open(self) -> None:
        self.store = self._open(self.prefix)
        await self.store.setup()
        # A store made from a cluster URL lets no more calls use the client
        # at once than its pools hold, since redis-py's cluster client fails
        # rather than waits when they run out. The floors and the hand-rolled
        # peer call that client directly, so they take the same permits; the
        # limiter is private, hence read defensively.
        self._permits = getattr(self.store, "_permits", None)
        self._floor_key = f"{self.prefix}floor"
        self._floor_script = self.client.register_script("return 1")
        await self._floor_script(keys=[self._floor_key])

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._delete_keys(f"{self.prefix}*")
        for store in self._stores:
            # One client failing to close leaves the others to be closed.
            with contextlib.suppress(Exception):
                await store.aclose()

    async def _delete_keys(self, pattern: str) -> None:
        client = self.client
        batch: list[str] = []
        async for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await client.unlink(*batch)
                batch.clear()
        if batch:
            await client.unlink(*batch)

    @property
    def commands(self) -> Any:
        """The client as the hand-rolled peer should use it: the store's
        own limit on calls at once applies to it too."""
        if self._permits is None:
            return self.client
        return _BoundedCommands(self.client, self._permits)

    def _bounded(self, call: FloorCall) -> FloorCall:
        """``call`` holding one of the store's permits, where it has any;
        nothing is added to a floor where there is no limit to keep."""
        permits = self._permits
        if permits is None:
            return call

        async def bounded() -> object:
            async with permits:
                return await call()

        return bounded

    def floors(self) -> dict[str, FloorCall]:
        script, keys, client = self._floor_script, [self._floor_key], self.client
        read_key = f"{self.prefix}floor-read"

        async def write() -> object:
            return await script(keys=keys)

        async def read() -> object:
            return await client.get(read_key)

        return {"write": self._bounded(write), "read": self._bounded(read)}

    def _cluster(self) -> bool:
        return type(self.client).__name__ == "RedisCluster"

    async def server(self) -> dict[str, Any]:
        if self._cluster():
            info = await self.client.info("server", target_nodes="random")
        else:
            info = await self.client.info("server")
        return {
            "version": info.get("redis_version"),
            "mode": info.get("redis_mode"),
            "os": info.get("os"),
            "io_threads_active": info.get("io_threads_active"),
            "url": redact_url(self.url),
        }

    async def _commandstats(self) -> dict[str, int]:
        info = await self.client.info("commandstats")
        return {
            name.removeprefix("cmdstat_").upper(): int(values["calls"])
            for name, values in info.items()
            if isinstance(values, dict) and "calls" in values
        }

    async def begin_count(self) -> None:
        cluster = self._cluster()
        if cluster:
            note = (
                "Redis server commands were not counted: INFO commandstats is "
                "read from one server only"
            )
            if note not in self.notes:
                self.notes.append(note)
        else:
            self._stats_before = await self._commandstats()
        client = self.client
        original = client.execute_command
        sent = self._sent
        sent.clear()

        async def counted(*args: Any, **options: Any) -> Any:
            sent[str(args[0]).upper()] += 1
            return await original(*args, **options)

        # An instance attribute shadows the method for this client only.
        client.execute_command = counted

    async def end_count(self) -> dict[str, dict[str, int]]:
        client = self.client
        with contextlib.suppress(AttributeError):
            del client.execute_command
        counts: dict[str, dict[str, int]] = {"round_trips": dict(self._sent)}
        if not self._cluster():
            after = await self._commandstats()
            delta = {
                name: calls - self._stats_before.get(name, 0)
                for name, calls in after.items()
                if name != "INFO" and calls != self._stats_before.get(name, 0)
            }
            counts["server_commands"] = delta
        return counts

    async def footprint(self, families: int) -> dict[str, Any]:
        if families <= 0:
            return {}
        prefix = f"{self.prefix}fp:"
        manager = TokenPairManager(self.secret, store=self._open(prefix))
        tokens = await fill(manager, families, "fp")
        issued, keys = await self._memory_usage(f"{prefix}*")
        await rotate_all(manager, tokens)
        rotated, _ = await self._memory_usage(f"{prefix}*")
        await self._delete_keys(f"{prefix}*")
        return {
            "method": "MEMORY USAGE (SAMPLES 0) summed over the store's keys",
            "families": families,
            "keys_per_family": round(keys / families, 2),
            "bytes_per_family_issued": round(issued / families, 1),
            "bytes_per_family_rotated": round(rotated / families, 1),
        }

    async def _memory_usage(self, pattern: str) -> tuple[int, int]:
        client = self.client
        keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
        total = 0
        for start in range(0, len(keys), 500):
            pipe = client.pipeline(transaction=False)
            for key in keys[start : start + 500]:
                pipe.memory_usage(key, samples=0)
            total += sum(int(size or 0) for size in await pipe.execute())
        return total, len(keys)


class _BoundedCommands:
    """The three commands the hand-rolled peer sends, each holding one of
    the store's permits while it runs."""

    def __init__(
        self, client: Any, permits: contextlib.AbstractAsyncContextManager[Any]
    ) -> None:
        self._client = client
        self._permits = permits

    async def get(self, *args: Any, **options: Any) -> Any:
        async with self._permits:
            return await self._client.get(*args, **options)

    async def set(self, *args: Any, **options: Any) -> Any:
        async with self._permits:
            return await self._client.set(*args, **options)

    async def delete(self, *args: Any, **options: Any) -> Any:
        async with self._permits:
            return await self._client.delete(*args, **options)


def _sqlite_url(path: Path) -> str:
    # Quoted, so that a '%', '?' or '#' in the name opens the very file that
    # was checked beforehand and is deleted afterwards, and no other.
    return "sqlite:///" + quote(str(path), safe="/")


def redact_url(url: str) -> str:
    """``url`` with every password in it, in the user part or in a query
    option, replaced by ``***``."""
    url = mask_secret_options(url)
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed IPv6 bracket, say
        scheme, separator, rest = url.partition("://")
        if separator and "@" in rest:
            return f"{scheme}://***@{rest.rpartition('@')[2]}"
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return parts._replace(netloc=user + netloc).geturl()


# -- MongoDB ---------------------------------------------------------------


class _CommandCounter:
    """Counts PyMongo's command-started events while switched on."""

    def __init__(self) -> None:
        self.active = False
        self.counts: Counter[str] = Counter()

    def started(self, event: Any) -> None:
        if self.active:
            self.counts[event.command_name] += 1

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass


def _command_listener() -> _CommandCounter:
    from pymongo import monitoring

    # PyMongo accepts only subclasses of its listener classes.
    class Listener(_CommandCounter, monitoring.CommandListener):
        pass

    return Listener()


def mongo_driver_url(url: str) -> str:
    # ``collection`` is the store's URL option; the benchmark names its own.
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k.lower() != "collection"]
    return parts._replace(query=urlencode(query, quote_via=quote)).geturl()


class MongoBackend(Backend):
    name = "mongodb"

    def __init__(self, secret: bytes, run_id: str, url: str) -> None:
        super().__init__(secret, run_id)
        self.url = url
        self._counter = _CommandCounter()
        self._client: Any = None
        self._base = f"bench_{run_id}"

    async def open(self) -> None:
        from pymongo import AsyncMongoClient

        from tokenpair_mongodb import MongoStore

        listener = _command_listener()
        self._counter = listener
        self._client = AsyncMongoClient(
            mongo_driver_url(self.url), event_listeners=[listener]
        )
        self._db = self._client.get_default_database(default="tokenpair_bench")
        self.store = MongoStore(self._db[self._base])
        await self.store.setup()
        self._floor = self._db[f"{self._base}_floor"]
        await self._floor.insert_one({"_id": 1, "n": 0})

    async def aclose(self) -> None:
        if self._client is None:
            return
        with contextlib.suppress(Exception):
            for name in await self._db.list_collection_names():
                if name.startswith(self._base):
                    await self._db.drop_collection(name)
        await self.store.aclose()
        await self._client.close()

    def floors(self) -> dict[str, FloorCall]:
        floor = self._floor

        async def write() -> object:
            return await floor.find_one_and_update({"_id": 1}, {"$inc": {"n": 1}})

        async def read() -> object:
            return await floor.find_one({"_id": 1})

        return {"write": write, "read": read}

    async def server(self) -> dict[str, Any]:
        info: dict[str, Any] = await self._client.admin.command("buildInfo")
        hello: dict[str, Any] = await self._client.admin.command("hello")
        described = {
            "version": info.get("version"),
            "git_version": info.get("gitVersion"),
            "max_wire_version": hello.get("maxWireVersion"),
            "topology": "replica set" if hello.get("setName") else "standalone",
            "url": redact_url(self.url),
        }
        # mongoeco, the wire-protocol emulator the tests use, signs its
        # buildInfo; its figures say nothing about a real mongod's.
        if info.get("gitVersion") == "mongoeco":
            described["engine"] = (
                "mongoeco (MongoDB wire-protocol emulator in Python; reports "
                f"server version {info.get('version')})"
            )
        return described

    async def begin_count(self) -> None:
        self._counter.counts.clear()
        self._counter.active = True

    async def end_count(self) -> dict[str, dict[str, int]]:
        self._counter.active = False
        return {"round_trips": dict(self._counter.counts)}

    async def footprint(self, families: int) -> dict[str, Any]:
        if families <= 0:
            return {}
        from tokenpair_mongodb import MongoStore

        collection = self._db[f"{self._base}_fp"]
        manager = TokenPairManager(self.secret, store=MongoStore(collection))
        tokens = await fill(manager, families, "fp")
        issued = await self._object_size(collection)
        await rotate_all(manager, tokens)
        rotated = await self._object_size(collection)
        return {
            "method": issued["method"],
            "families": families,
            "bytes_per_family_issued": issued["size"],
            "bytes_per_family_rotated": rotated["size"],
            "index_bytes_per_family": rotated.get("index_size"),
        }

    async def _object_size(self, collection: Any) -> dict[str, Any]:
        with contextlib.suppress(Exception):
            stats = await self._db.command("collStats", collection.name)
            if stats.get("avgObjSize") and stats.get("count"):
                indexes = stats.get("totalIndexSize")
                return {
                    "method": "collStats avgObjSize (documents), totalIndexSize "
                    "/ count (indexes)",
                    "size": round(float(stats["avgObjSize"]), 1),
                    "index_size": None
                    if indexes is None
                    else round(float(indexes) / float(stats["count"]), 1),
                }
        # The server keeps no statistics (mongoeco does not): the size of
        # the documents as BSON is what a real server would store, before
        # its own compression and indexes.
        import bson

        total = count = 0
        async for document in collection.find({}):
            total += len(bson.encode(document))
            count += 1
        return {
            "method": "collStats not supported by the server; average BSON "
            "size of the documents, indexes not included",
            "size": round(total / count, 1) if count else None,
        }


def run_id() -> str:
    return f"{os.getpid()}{secrets.token_hex(3)}"
