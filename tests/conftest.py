"""Shared fixtures. Test servers are started by the plugins listed here."""

from __future__ import annotations

pytest_plugins = [
    "tests.support.redis_servers",
    "tests.support.mongo_server",
]
