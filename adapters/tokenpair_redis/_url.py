"""Making a :class:`RedisStore` and its client from a URL."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from tokenpair import ConfigurationError

from ._store import RedisStore

__all__ = ["store_from_url"]

_STANDALONE = {"redis": "redis", "rediss": "rediss"}
_CLUSTER = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

#: Connections per server (standalone) or per node (cluster).
DEFAULT_MAX_CONNECTIONS = 50
#: Seconds a call waits for a free connection before it fails.
DEFAULT_POOL_TIMEOUT = 10.0
#: Seconds to connect, and to wait for any reply; a URL may say otherwise.
DEFAULT_SOCKET_TIMEOUT = 5.0
# Cluster connections used outside the calls the store counts: topology
# discovery after a failover, while every counted call holds one.
_CLUSTER_SPARE_CONNECTIONS = 4


def store_from_url(url: str) -> RedisStore:
    """Make a store that owns its client, without connecting yet.

    ``redis://[user:password@]host[:port][/db]`` and ``rediss://`` (TLS) for
    one server; ``redis+cluster://[user:password@]host:port[,host:port...]``
    and ``rediss+cluster://`` for a cluster, naming one or more startup nodes.

    The store's own query options are ``prefix`` (of every key, default
    ``tokenpair:``), ``max_connections`` (per server or node, default 50) and
    ``pool_timeout`` (seconds a call waits for a free connection, default 10);
    any other, such as ``socket_timeout`` or ``ssl_ca_certs``, goes to
    redis-py. When every connection is busy, calls wait their turn instead
    of failing, up to ``pool_timeout``.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or (scheme not in _STANDALONE and scheme not in _CLUSTER):
        raise ConfigurationError(
            "a Redis store URL starts with redis://, rediss://, redis+cluster:// "
            "or rediss+cluster://"
        )
    parts = urlsplit(f"{scheme}://{rest}")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    prefix = options.pop("prefix", "tokenpair:")
    max_connections = int(
        _number(options, "max_connections", DEFAULT_MAX_CONNECTIONS, int)
    )
    pool_timeout = _number(options, "pool_timeout", DEFAULT_POOL_TIMEOUT, float)
    if max_connections < 1 or pool_timeout < 0:
        raise ConfigurationError(
            "max_connections must be at least 1 and pool_timeout not negative"
        )
    query = urlencode(options)
    try:
        if scheme in _STANDALONE:
            pool = BlockingConnectionPool.from_url(
                parts._replace(query=query).geturl(),
                max_connections=max_connections,
                timeout=pool_timeout,
                socket_timeout=DEFAULT_SOCKET_TIMEOUT,
                socket_connect_timeout=DEFAULT_SOCKET_TIMEOUT,
            )
            store = RedisStore(Redis.from_pool(pool), prefix=prefix)
            store._adopt(max_waiting=None, wait_timeout=pool_timeout)
            return store
        client = _cluster_client(_CLUSTER[scheme], parts.netloc, query, max_connections)
    except ValueError as exc:
        # redis-py names the option it could not read; the URL may hold a
        # password, so it is not repeated here.
        raise ConfigurationError(f"invalid Redis store URL: {exc}") from None
    store = RedisStore(client, prefix=prefix)
    # The asyncio cluster client raises MaxConnectionsError at once when a
    # node's pool is exhausted; the store makes callers queue instead.
    store._adopt(max_waiting=max_connections, wait_timeout=pool_timeout)
    return store


def _number(
    options: dict[str, str], name: str, default: float, kind: type[float] | type[int]
) -> float:
    raw = options.pop(name, None)
    if raw is None:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ConfigurationError(
            f"{name} in a Redis store URL must be a number"
        ) from None


def _cluster_client(
    scheme: str, netloc: str, query: str, max_connections: int
) -> RedisCluster:
    userinfo, _, hosts = netloc.rpartition("@")
    nodes = [_host_port(item) for item in hosts.split(",") if item]
    if not nodes:
        raise ConfigurationError("a Redis Cluster URL names at least one node")
    (first_host, first_port), others = nodes[0], nodes[1:]
    shown = f"[{first_host}]" if ":" in first_host else first_host
    credentials = f"{userinfo}@" if userinfo else ""
    # redis-py reads credentials and options from a plain URL for the first
    # node; the other nodes are passed as startup nodes beside it.
    single = f"{scheme}://{credentials}{shown}:{first_port}/?{query}"
    return RedisCluster.from_url(
        single,
        startup_nodes=[ClusterNode(host, port) for host, port in others],
        max_connections=max_connections + _CLUSTER_SPARE_CONNECTIONS,
        socket_timeout=DEFAULT_SOCKET_TIMEOUT,
        socket_connect_timeout=DEFAULT_SOCKET_TIMEOUT,
    )


def _host_port(item: str) -> tuple[str, int]:
    if item.startswith("["):
        host, _, port = item[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
    if not host:
        raise ConfigurationError("a Redis Cluster URL names each node as host:port")
    try:
        return unquote(host), int(port) if port else 6379
    except ValueError:
        raise ConfigurationError(
            "a Redis Cluster URL names each node as host:port"
        ) from None
