"""Test helpers for applications and store adapters.

:class:`FakeClock` drives every expiry decision of a manager without sleeping.
:class:`StoreContract` is the suite every store must pass; an adapter's tests
subclass it and provide one fixture::

    class TestMyStoreContract(StoreContract):
        @pytest.fixture
        async def store_factory(self):
            stores = []

            async def make():
                store = MyStore(...)      # same backing data on every call
                await store.setup()
                stores.append(store)
                return store

            yield make
            for store in stores:
                await store.aclose()
            ...                           # remove this test's data

The suite runs under asyncio and trio; a store whose driver is bound to asyncio
overrides the ``anyio_backend`` fixture to return ``"asyncio"``. It needs
pytest and the anyio pytest plugin (installed with anyio).
"""

from ._clock import FakeClock
from ._contract import StoreContract

__all__ = ["FakeClock", "StoreContract"]
