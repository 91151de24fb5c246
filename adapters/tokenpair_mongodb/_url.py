from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from tokenpair import ConfigurationError

__all__ = [
    "DEFAULT_COLLECTION",
    "DEFAULT_DATABASE",
    "MongoURL",
    "check_collection_name",
    "split_url",
]

DEFAULT_DATABASE = "tokenpair"
DEFAULT_COLLECTION = "tokenpair_families"

_SCHEMES = ("mongodb://", "mongodb+srv://")


@dataclass(frozen=True, slots=True)
class MongoURL:
    """A store URL taken apart: what the driver gets, and where families go."""

    #: The URL for the driver: the store's own options removed, the rest
    #: (credentials, hosts, database, driver options) exactly as given.
    driver_url: str
    database: str
    collection: str


def check_collection_name(name: str) -> None:
    """Refuse a collection MongoDB reserves for itself.

    The driver checks the rest of a name's syntax, but lets ``system.*``
    through, and the server would then either refuse the first write or
    hold families among its own metadata.
    """
    if name.startswith("system."):
        raise ConfigurationError(
            f"MongoStore cannot keep its data in {name!r}: collections named "
            "system.* are reserved by MongoDB"
        )


def split_url(url: str) -> MongoURL:
    """Take the ``collection`` option out of a MongoDB connection string.

    The rest is left byte for byte as given: re-encoding it could change
    credentials, and adding a database to the path would change the default
    ``authSource``. Parsing is by hand rather than with PyMongo's URI parser
    because that resolves ``mongodb+srv`` names, and making a store does no
    I/O.
    """
    scheme = next((s for s in _SCHEMES if url.lower().startswith(s)), None)
    if scheme is None:
        raise ConfigurationError(
            "a MongoDB store URL starts with mongodb:// or mongodb+srv://"
        )
    if "#" in url:
        raise ConfigurationError("a MongoDB store URL has no #fragment")
    prefix, rest = url[: len(scheme)], url[len(scheme) :]
    # Credentials and hosts cannot hold a raw "/" or "?" (RFC 3986 and the
    # MongoDB connection string spec both require them percent-encoded).
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=-1)
    hosts, tail = (rest, "") if cut < 0 else (rest[:cut], rest[cut:])
    if tail.startswith("/"):
        path, _, query = tail[1:].partition("?")
    else:
        path, query = "", tail[1:]
    if not hosts:
        raise ConfigurationError("a MongoDB store URL needs at least one host")

    collection = DEFAULT_COLLECTION
    seen_collection = False
    kept: list[str] = []
    for pair in query.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if unquote(name).lower() == "collection":
            if seen_collection:
                raise ConfigurationError(
                    "the collection option appears twice in the MongoDB store URL"
                )
            seen_collection = True
            collection = unquote(value)
            if not collection:
                raise ConfigurationError(
                    "the collection option of a MongoDB store URL is empty"
                )
            check_collection_name(collection)
        else:
            kept.append(pair)

    database = unquote(path) or DEFAULT_DATABASE
    driver_url = prefix + hosts + "/" + path
    if kept:
        driver_url += "?" + "&".join(kept)
    return MongoURL(driver_url=driver_url, database=database, collection=collection)
