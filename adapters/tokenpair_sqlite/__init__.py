"""tokenpair's SQLite store: one database file in WAL mode, shared safely by
any number of processes. Installed with the ``sqlite`` extra; asyncio only."""

from tokenpair_sqlite._store import SQLiteStore, store_from_url

__all__ = ["SQLiteStore", "store_from_url"]
