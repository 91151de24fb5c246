"""Making a :class:`RedisStore` and its client from a URL."""

from __future__ import annotations

import math
import ssl
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS
from redis.exceptions import RedisClusterException

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
#: redis-py options a standalone URL may carry besides those redis-py parses
#: itself (URL_QUERY_ARGUMENT_PARSERS): the connection settings that take
#: text. redis-py hands any other name to the connection as a keyword, which
#: fails only when the first command connects.
_TEXT_OPTIONS = frozenset(
    {"client_name", "lib_name", "lib_version", "username", "password"}
)
#: Names the server refuses to take with a space or a control character in
#: them (CLIENT SETNAME, CLIENT SETINFO), which would fail the first command.
_NAME_OPTIONS = frozenset({"client_name", "lib_name", "lib_version"})
_CERT_REQUIREMENTS = frozenset({"none", "optional", "required"})
_TLS_TEXT_OPTIONS = frozenset(
    {
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_ca_data",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_password",
        "ssl_cert_reqs",
        "ssl_ciphers",
    }
)


def store_from_url(url: str) -> RedisStore:
    """Make a store that owns its client, without connecting yet.

    ``redis://[user:password@]host[:port][/db]`` and ``rediss://`` (TLS) for
    one server; ``redis+cluster://[user:password@]host:port[,host:port...]``
    and ``rediss+cluster://`` for a cluster, naming one or more startup nodes.
    A password holding ``/``, ``?``, ``#``, ``@``, ``[`` or ``]`` is
    percent-encoded.

    The store's own query options are ``prefix`` (of every key, default
    ``tokenpair:``), ``max_connections`` (per server or node, default 50) and
    ``pool_timeout`` (seconds a call waits for a free connection, default 10);
    any other, such as ``socket_timeout`` or ``ssl_ca_certs``, goes to
    redis-py. When every connection is busy, calls wait their turn instead
    of failing, up to ``pool_timeout``.

    A malformed URL is a :class:`~tokenpair.ConfigurationError` whose message
    quotes no part of the URL that could hold a password.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or (scheme not in _STANDALONE and scheme not in _CLUSTER):
        raise ConfigurationError(
            "a Redis store URL starts with redis://, rediss://, redis+cluster:// "
            "or rediss+cluster://"
        )
    try:
        parts = urlsplit(f"{scheme}://{rest}")
    except ValueError:
        # Some of urlsplit's messages quote the host part, password included.
        raise ConfigurationError(
            "invalid Redis store URL: its host part could not be read (a host "
            "in [brackets] must be an IPv6 address, and a password holding [ "
            "or ] must be percent-encoded)"
        ) from None
    if "@" not in parts.netloc and "@" in rest:
        # An unencoded '/', '?' or '#' in a password ends the host part early,
        # and the rest of the password would be read as database or options.
        raise ConfigurationError(
            "invalid Redis store URL: a password holding '/', '?', '#' or '@' "
            "must be percent-encoded (%2F, %3F, %23, %40)"
        )
    if "#" in rest:
        raise ConfigurationError("a Redis store URL takes no #fragment")
    options = _options(parts.query)
    prefix = options.pop("prefix", "tokenpair:")
    max_connections = _max_connections(options)
    pool_timeout = _pool_timeout(options)
    cluster = scheme in _CLUSTER
    db = _database(parts.path, options.pop("db", None), cluster)
    if not cluster:
        _check_standalone_options(options, tls=scheme == "rediss")
        # A cluster has only database 0, and redis-py refuses to be told so.
        options["db"] = str(db)
    query = urlencode(options)
    try:
        if not cluster:
            _standalone_address(parts.netloc)
            pool = BlockingConnectionPool.from_url(
                parts._replace(path="", query=query).geturl(),
                max_connections=max_connections,
                timeout=pool_timeout,
                socket_timeout=DEFAULT_SOCKET_TIMEOUT,
                socket_connect_timeout=DEFAULT_SOCKET_TIMEOUT,
            )
            store = RedisStore(Redis.from_pool(pool), prefix=prefix)
            store._adopt(max_waiting=None, wait_timeout=pool_timeout)
            return store
        client = _cluster_client(_CLUSTER[scheme], parts.netloc, query, max_connections)
    except (ValueError, TypeError, RedisClusterException):
        # redis-py's messages may quote parts of the URL, the password
        # among them; the options were checked above, so say it generally.
        raise ConfigurationError(
            "invalid Redis store URL: redis-py could not read it"
        ) from None
    store = RedisStore(client, prefix=prefix)
    # The asyncio cluster client raises MaxConnectionsError at once when a
    # node's pool is exhausted; the store makes callers queue instead.
    store._adopt(max_waiting=max_connections, wait_timeout=pool_timeout)
    return store


def _options(query: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in options:
            raise ConfigurationError(
                f"Redis store URL option {name!r} is given more than once"
            )
        if name in ("encoding", "encoding_errors"):
            raise ConfigurationError(
                "a Redis store URL takes no encoding option: the store's data "
                "is UTF-8 whatever the connection would say"
            )
        if name == "timeout":
            # redis-py's name for the wait for a free connection, which would
            # silently replace the store's own pool_timeout.
            raise ConfigurationError(
                "a Redis store URL sets the wait for a free connection with "
                "pool_timeout, not timeout"
            )
        parser = URL_QUERY_ARGUMENT_PARSERS.get(name)
        if parser is not None:
            try:
                parser(value)
            except (TypeError, ValueError):
                raise ConfigurationError(
                    f"Redis store URL option {name!r} has an invalid value"
                ) from None
        if not _value_is_valid(name, value):
            raise ConfigurationError(
                f"Redis store URL option {name!r} has an invalid value"
            )
        options[name] = value
    return options


def _value_is_valid(name: str, value: str) -> bool:
    """Check what redis-py takes as it is and the server or the TLS layer
    would refuse only once a command is sent. The value is never quoted in
    an error: it may be a password."""
    if name in ("socket_timeout", "socket_connect_timeout"):
        seconds = float(value)
        return math.isfinite(seconds) and seconds > 0
    if name == "health_check_interval":
        return int(value) >= 0
    if name == "socket_read_size":
        return int(value) > 0
    if name == "protocol":
        return int(value) in (2, 3)
    if name in _NAME_OPTIONS:
        return all(33 <= ord(character) <= 126 for character in value)
    if name == "ssl_min_version":
        return int(value) in {version.value for version in ssl.TLSVersion}
    if name == "ssl_cert_reqs":
        return value in _CERT_REQUIREMENTS
    if name == "ssl_ciphers":
        try:
            ssl.create_default_context().set_ciphers(value)
        except ssl.SSLError:
            return False
    return True


def _check_standalone_options(options: dict[str, str], *, tls: bool) -> None:
    """Refuse, before anything connects, an option redis-py would only fail
    on at the first command (a cluster client checks its own when made)."""
    for name in options:
        if name.startswith("ssl_") and not tls:
            raise ConfigurationError(
                f"Redis store URL option {name!r} is for TLS connections, "
                "which start with rediss://"
            )
        known = (
            name in URL_QUERY_ARGUMENT_PARSERS
            or name in _TEXT_OPTIONS
            or name in _TLS_TEXT_OPTIONS
        )
        if not known:
            # The name is not quoted: in a mangled URL it may be part of a
            # password.
            raise ConfigurationError(
                "the Redis store URL has an option that neither the store "
                "(prefix, max_connections, pool_timeout) nor redis-py takes"
            )


def _max_connections(options: dict[str, str]) -> int:
    raw = options.pop("max_connections", None)
    if raw is None:
        return DEFAULT_MAX_CONNECTIONS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigurationError(
            "max_connections in a Redis store URL must be a whole number >= 1"
        )
    return value


def _pool_timeout(options: dict[str, str]) -> float:
    raw = options.pop("pool_timeout", None)
    if raw is None:
        return DEFAULT_POOL_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ConfigurationError(
            "pool_timeout in a Redis store URL must be a finite number of seconds >= 0"
        )
    return value


def _database(path: str, option: str | None, cluster: bool) -> int:
    """The database number from the URL's path or its ``db`` option."""
    if path not in ("", "/") and option is not None:
        raise ConfigurationError(
            "a Redis store URL names its database once, in the path or as db="
        )
    text = path[1:] if option is None else option
    if text == "":
        return 0
    if not (text.isascii() and text.isdigit()):
        raise ConfigurationError(
            "the database of a Redis store URL is a number, as in redis://host:6379/0"
        )
    db = int(text)
    if cluster and db != 0:
        raise ConfigurationError("a Redis Cluster has only database 0")
    return db


def _standalone_address(netloc: str) -> None:
    """Check the host and port, which redis-py's messages would quote."""
    hostport = netloc.rpartition("@")[2]
    if "," in hostport:
        raise ConfigurationError(
            "a Redis store URL names one server; for several cluster nodes "
            "use redis+cluster://"
        )
    if hostport:
        _host_port(hostport)


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
    if port == "":
        port = "6379"
    if not (host and port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ConfigurationError(
            "a Redis store URL names each server as host:port, the port a "
            "number from 1 to 65535"
        )
    return unquote(host), int(port)
