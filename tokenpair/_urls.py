from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import cast

from ._errors import ConfigurationError
from ._memory import MemoryStore
from ._store import Store

__all__ = ["mask_secret_options", "open_store"]

#: A query option holding a secret: redis-py's ``password`` and
#: ``ssl_password``, PyMongo's ``tlsCertificateKeyFilePassword``, and the like.
_SECRET_OPTION = re.compile(
    r"(?i)((?:^|[?&;])[^=&;#]*(?:password|secret)[^=&;#]*=)[^&;#]*"
)

# scheme -> (module, factory, extra that installs the module)
_ADAPTERS: dict[str, tuple[str, str, str]] = {
    "sqlite": ("tokenpair_sqlite", "store_from_url", "sqlite"),
    "redis": ("tokenpair_redis", "store_from_url", "redis"),
    "rediss": ("tokenpair_redis", "store_from_url", "redis"),
    "redis+cluster": ("tokenpair_redis", "store_from_url", "redis"),
    "rediss+cluster": ("tokenpair_redis", "store_from_url", "redis"),
    "mongodb": ("tokenpair_mongodb", "store_from_url", "mongodb"),
    "mongodb+srv": ("tokenpair_mongodb", "store_from_url", "mongodb"),
}


def open_store(url: str) -> Store:
    """Make a store from a URL, without connecting yet.

    ``memory://``; ``sqlite:///relative.db`` or ``sqlite:////abs/path.db``;
    ``redis://``, ``rediss://`` and ``redis+cluster://host:port``;
    ``mongodb://host/db?collection=name``. The adapter's driver is imported
    only here, and a missing one names the extra that installs it.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            "a store URL looks like memory://, sqlite:///tokens.db, "
            "redis://host:6379/0 or mongodb://host/db"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme == "memory":
        return MemoryStore()
    try:
        module_name, factory_name, extra = _ADAPTERS[scheme]
    except KeyError:
        known = ", ".join(["memory", *_ADAPTERS])
        raise ConfigurationError(
            f"no store for the scheme {scheme!r}; known schemes: {known}"
        ) from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"the {scheme}:// store needs its extra: pip install 'tokenpair[{extra}]' "
            f"({exc.name or module_name} is missing)"
        ) from exc
    factory = cast(Callable[[str], Store], getattr(module, factory_name))
    return factory(url)


def mask_secret_options(url: str) -> str:
    """``url`` with the value of every option that holds a password or a
    secret replaced by ``***``; the user part is left to the caller."""
    return _SECRET_OPTION.sub(r"\1***", url)
