"""A tokenpair store on Redis and Redis Cluster, through redis-py's asyncio
client.

Install with ``pip install 'tokenpair[redis]'``. Hand :class:`RedisStore` a
client you manage, or let :func:`store_from_url` make one::

    store = RedisStore(redis.asyncio.Redis(host="localhost"))
    store = store_from_url("redis+cluster://10.0.0.1:7000,10.0.0.2:7000")
"""

from ._store import RedisStore
from ._url import store_from_url

__all__ = ["RedisStore", "store_from_url"]
