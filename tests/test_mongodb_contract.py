"""The store contract, run on MongoStore through PyMongo's asyncio client and
through Motor."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import AsyncMongoClient

from tokenpair import Store
from tokenpair.testing import StoreContract
from tokenpair_mongodb import MongoStore

DATABASE = "tokenpair_tests"


@pytest.mark.parametrize("client_kind", ["pymongo", "motor"], indirect=True)
class TestMongoContract(StoreContract):
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def client_kind(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    async def store_factory(
        self, client_kind: str, mongodb_url: str
    ) -> AsyncIterator[Callable[[], Awaitable[Store]]]:
        # Every store gets a client of its own, as separate processes would;
        # they share the test's collections.
        name = f"families_{uuid.uuid4().hex}"
        clients: list[Any] = []

        async def make() -> Store:
            client: Any
            if client_kind == "pymongo":
                client = AsyncMongoClient(mongodb_url)
            else:
                client = AsyncIOMotorClient(mongodb_url)
            clients.append(client)
            store = MongoStore(client[DATABASE][name])
            await store.setup()
            return store

        yield make
        cleanup: Any = AsyncMongoClient(mongodb_url)
        try:
            await cleanup[DATABASE][name].drop()
            await cleanup[DATABASE][f"{name}_cutoffs"].drop()
        finally:
            await cleanup.close()
        for client in clients:
            if isinstance(client, AsyncMongoClient):
                await client.close()
            else:
                client.close()
