from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tokenpair import MemoryStore, Store
from tokenpair.testing import StoreContract


class TestMemoryStoreContract(StoreContract):
    @pytest.fixture
    async def store_factory(self) -> AsyncIterator[Callable[[], Awaitable[Store]]]:
        shared = MemoryStore()

        async def make() -> Store:
            # One MemoryStore per process: "sharing a backend" means sharing it.
            return shared

        yield make
        await shared.aclose()
