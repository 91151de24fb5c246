"""A tokenpair store on MongoDB, through PyMongo's asyncio API or Motor.

Install with ``pip install 'tokenpair[mongodb]'`` (or ``[motor]``)::

    from tokenpair_mongodb import MongoStore, store_from_url

    store = store_from_url("mongodb://localhost/app?collection=sessions")
    # or, sharing a client the application already has:
    store = MongoStore(client["app"]["sessions"])
"""

from ._store import AsyncCollectionLike, MongoStore, store_from_url

__all__ = ["MongoStore", "store_from_url", "AsyncCollectionLike"]
