"""The store contract on a standalone Redis server and on a Redis Cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlencode

import pytest

from tests.support.redis_servers import client_for, delete_prefix, unique_prefix
from tokenpair import Store
from tokenpair.testing import StoreContract
from tokenpair_redis import RedisStore, store_from_url


class TestRedisContract(StoreContract):
    @pytest.fixture
    def anyio_backend(self) -> str:
        # redis.asyncio runs on asyncio only.
        return "asyncio"

    @pytest.fixture(params=["standalone", "cluster"])
    def server_url(self, request: pytest.FixtureRequest) -> str:
        name = "redis_url" if request.param == "standalone" else "redis_cluster_url"
        return str(request.getfixturevalue(name))

    @pytest.fixture
    async def store_factory(
        self, server_url: str
    ) -> AsyncIterator[Callable[[], Awaitable[Store]]]:
        prefix = unique_prefix()
        separator = "&" if "?" in server_url else "?"
        url = f"{server_url}{separator}{urlencode({'prefix': prefix})}"
        stores: list[RedisStore] = []

        async def make() -> Store:
            # Each store has a client of its own, as separate processes would.
            store = store_from_url(url)
            await store.setup()
            stores.append(store)
            return store

        yield make
        for store in stores:
            await store.aclose()
        client = client_for(server_url)
        try:
            await delete_prefix(client, prefix)
        finally:
            await client.aclose()
