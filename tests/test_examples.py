"""The framework examples of ``docs/examples``, each through its framework's
own test client, on the memory store and on a SQLite file."""

from __future__ import annotations

import importlib
import json
import time
import warnings
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio
import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from tokenpair import (
    DEFAULT_ACCESS_TTL,
    DEFAULT_REUSE_GRACE,
    MemoryStore,
    TokenPairManager,
)
from tokenpair.testing import FakeClock

pytestmark = pytest.mark.anyio

ACCESS_TTL = DEFAULT_ACCESS_TTL.total_seconds()
GRACE = DEFAULT_REUSE_GRACE.total_seconds()
FRAMEWORKS = ["fastapi", "starlette", "litestar", "aiohttp", "django"]
GOOD_LOGIN = {"username": "alice", "password": "wonderland"}


@pytest.fixture
def anyio_backend() -> str:
    # aiohttp, Django and the SQLite store run on asyncio only.
    return "asyncio"


@pytest.fixture(params=["memory", "sqlite"])
def store_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The store, chosen as a deployment chooses it: by environment."""
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/x.db"
    monkeypatch.setenv("TOKENPAIR_STORE_URL", url)
    return url


def example(framework: str) -> Any:
    return importlib.import_module(f"docs.examples.{framework}_app")


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


class Client(Protocol):
    manager: TokenPairManager

    async def get(self, path: str, token: str | None = None) -> Reply: ...

    async def post(
        self,
        path: str,
        *,
        form: str | None = None,
        body: Any = None,
        token: str | None = None,
    ) -> Reply: ...


class HTTPXClient:
    """Requests through an httpx client: httpx's ASGI transport for
    Starlette and FastAPI, Litestar's own AsyncTestClient."""

    def __init__(self, client: httpx.AsyncClient, manager: TokenPairManager) -> None:
        self.client = client
        self.manager = manager

    async def get(self, path: str, token: str | None = None) -> Reply:
        response = await self.client.get(path, headers=_auth(token))
        return Reply(response.status_code, response.headers, response.content)

    async def post(
        self,
        path: str,
        *,
        form: str | None = None,
        body: Any = None,
        token: str | None = None,
    ) -> Reply:
        headers, content = _payload(form, body, token)
        response = await self.client.post(path, headers=headers, content=content)
        return Reply(response.status_code, response.headers, response.content)


class AiohttpClient:
    def __init__(self, client: Any, manager: TokenPairManager) -> None:
        self.client = client
        self.manager = manager

    async def get(self, path: str, token: str | None = None) -> Reply:
        async with self.client.get(path, headers=_auth(token)) as response:
            return Reply(response.status, response.headers, await response.read())

    async def post(
        self,
        path: str,
        *,
        form: str | None = None,
        body: Any = None,
        token: str | None = None,
    ) -> Reply:
        headers, content = _payload(form, body, token)
        async with self.client.post(path, headers=headers, data=content) as response:
            return Reply(response.status, response.headers, await response.read())


class DjangoClient:
    def __init__(self, client: Any, manager: TokenPairManager) -> None:
        self.client = client
        self.manager = manager

    async def get(self, path: str, token: str | None = None) -> Reply:
        response = await self.client.get(path, headers=_auth(token))
        return _django_reply(response)

    async def post(
        self,
        path: str,
        *,
        form: str | None = None,
        body: Any = None,
        token: str | None = None,
    ) -> Reply:
        headers, content = _payload(form, body, token)
        content_type = headers.pop("Content-Type", "application/octet-stream")
        response = await self.client.post(
            path, data=content, content_type=content_type, headers=headers
        )
        return _django_reply(response)


def _django_reply(response: Any) -> Reply:
    headers = {name.lower(): value for name, value in response.headers.items()}
    return Reply(response.status_code, headers, response.content)


def _auth(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def _payload(
    form: str | None, body: Any, token: str | None
) -> tuple[dict[str, str], bytes]:
    headers = _auth(token)
    if form is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return headers, form.encode()
    if body is not None:
        headers["Content-Type"] = "application/json"
        return headers, json.dumps(body).encode()
    return headers, b""


@asynccontextmanager
async def asgi_lifespan(app: Any) -> AsyncIterator[None]:
    """Drive an ASGI application's lifespan protocol, as a server does."""
    to_app, app_inbox = anyio.create_memory_object_stream[dict[str, Any]](4)
    app_outbox, from_app = anyio.create_memory_object_stream[dict[str, Any]](4)
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    async with (
        to_app,
        app_inbox,
        app_outbox,
        from_app,
        anyio.create_task_group() as tasks,
    ):
        tasks.start_soon(app, scope, app_inbox.receive, app_outbox.send)
        await to_app.send({"type": "lifespan.startup"})
        assert (await from_app.receive())["type"] == "lifespan.startup.complete"
        try:
            yield
        finally:
            await to_app.send({"type": "lifespan.shutdown"})
            assert (await from_app.receive())["type"] == "lifespan.shutdown.complete"


@asynccontextmanager
async def serve(
    framework: str, clock: FakeClock, store_url: str | None = None
) -> AsyncIterator[Client]:
    """The example app behind its framework's test client, started and shut
    down as a server would; ``store_url`` None leaves it to the environment."""
    module = example(framework)
    app = module.create_app(store_url=store_url, clock=clock)
    if framework in ("fastapi", "starlette"):
        transport = httpx.ASGITransport(app=app)
        async with (
            asgi_lifespan(app),
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as c,
        ):
            yield HTTPXClient(c, app.state.manager)
    elif framework == "litestar":
        from litestar.testing import AsyncTestClient

        async with AsyncTestClient(app=app) as c:
            yield HTTPXClient(c, app.state.manager)
    elif framework == "aiohttp":
        from aiohttp.test_utils import TestClient, TestServer

        async with TestClient(TestServer(app, host="127.0.0.1")) as c:
            yield AiohttpClient(c, app[module.MANAGER])
    else:
        from django.test import AsyncClient

        async with asgi_lifespan(app):
            yield DjangoClient(AsyncClient(), app.manager)


@pytest.fixture(scope="module", autouse=True)
def django_test_environment() -> Any:
    from django.test.utils import setup_test_environment, teardown_test_environment

    example("django")
    setup_test_environment()
    yield
    teardown_test_environment()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=time.time())


async def login(client: Client, **credentials: str) -> dict[str, Any]:
    reply = await client.post("/login", body=credentials or GOOD_LOGIN)
    assert reply.status == 200, reply.content
    body: dict[str, Any] = reply.json()
    return body


def refresh_form(refresh_token: str) -> str:
    return f"grant_type=refresh_token&refresh_token={refresh_token}"


def assert_oauth_error(reply: Reply, error: str, status: int = 400) -> None:
    assert reply.status == status, reply.content
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json()["error"] == error
    assert reply.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_login_refresh_and_reuse(
    framework: str, store_url: str, clock: FakeClock
) -> None:
    """Log in, call a protected route, refresh after the access token
    expired, and see a replayed refresh token end the login."""
    async with serve(framework, clock) as client:
        in_memory = isinstance(client.manager.store, MemoryStore)
        assert in_memory == store_url.startswith("memory:")
        assert_oauth_error(
            await client.post("/login", body={**GOOD_LOGIN, "password": "x"}),
            "invalid_grant",
        )
        first = await login(client)
        assert first["token_type"] == "Bearer"
        assert first["expires_in"] == ACCESS_TTL

        me = await client.get("/me", first["access_token"])
        assert me.status == 200
        assert me.json() == {"sub": "alice", "name": "Alice"}

        clock.advance(ACCESS_TTL)
        expired = await client.get("/me", first["access_token"])
        assert expired.status == 401
        challenge = expired.headers["www-authenticate"]
        assert challenge.startswith('Bearer error="invalid_token"')
        assert "expired" in challenge

        reply = await client.post("/token", form=refresh_form(first["refresh_token"]))
        assert reply.status == 200, reply.content
        assert reply.headers["cache-control"] == "no-store"
        assert reply.headers["pragma"] == "no-cache"
        second = reply.json()
        assert (await client.get("/me", second["access_token"])).status == 200

        clock.advance(GRACE)
        replay = await client.post("/token", form=refresh_form(first["refresh_token"]))
        assert_oauth_error(replay, "invalid_grant")
        assert first["refresh_token"] not in replay.content.decode()
        latest = await client.post("/token", form=refresh_form(second["refresh_token"]))
        assert_oauth_error(latest, "invalid_grant")


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_malformed_requests_are_refused(
    framework: str, store_url: str, clock: FakeClock
) -> None:
    async with serve(framework, clock) as client:
        pair = await login(client)
        token = pair["refresh_token"]

        assert (await client.get("/me")).headers["www-authenticate"] == "Bearer"
        assert (await client.get("/me")).status == 401
        repeated = f"{refresh_form(token)}&refresh_token={token}"
        assert_oauth_error(
            await client.post("/token", form=repeated), "invalid_request"
        )
        assert_oauth_error(await client.post("/token", form=""), "invalid_request")
        assert_oauth_error(
            await client.post(
                "/token", form=f"grant_type=password&refresh_token={token}"
            ),
            "unsupported_grant_type",
        )
        assert_oauth_error(await client.post("/revoke", form=""), "invalid_request")
        # Nothing above consumed the token.
        assert (await client.post("/token", form=refresh_form(token))).status == 200


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_revoke_and_logout_everywhere(
    framework: str, store_url: str, clock: FakeClock
) -> None:
    async with serve(framework, clock) as client:
        laptop = await login(client)
        revoked = await client.post("/revoke", form=f"token={laptop['refresh_token']}")
        assert revoked.status == 200
        assert_oauth_error(
            await client.post("/token", form=refresh_form(laptop["refresh_token"])),
            "invalid_grant",
        )
        assert_oauth_error(
            await client.post("/revoke", form=f"token={laptop['access_token']}"),
            "unsupported_token_type",
        )

        phone, tablet = await login(client), await login(client)
        reply = await client.post("/logout-everywhere", token=phone["access_token"])
        assert reply.status == 200
        assert reply.json() == {"revoked": 2}
        assert (await client.get("/me", tablet["access_token"])).status == 401
        assert_oauth_error(
            await client.post("/token", form=refresh_form(tablet["refresh_token"])),
            "invalid_grant",
        )
        assert (await client.post("/logout-everywhere")).status == 401


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_the_jwk_set_verifies_access_tokens(
    framework: str, clock: FakeClock
) -> None:
    async with serve(framework, clock, store_url="memory://") as client:
        pair = await login(client)

        reply = await client.get("/.well-known/jwks.json")

        assert reply.status == 200
        assert reply.headers["content-type"] == "application/jwk-set+json"
        keys = KeySet.import_key_set(reply.json())
        assert all("d" not in key for key in reply.json()["keys"])
        token = jwt.decode(pair["access_token"], keys, algorithms=["ES256"])
        assert token.claims["sub"] == "alice"
        assert token.header["typ"] == "at+jwt"


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_the_manager_is_closed_on_shutdown(
    framework: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[bool] = []
    async with serve(framework, clock, store_url="memory://") as client:
        store = client.manager.store
        original = store.aclose

        async def aclose() -> None:
            closed.append(True)
            await original()

        monkeypatch.setattr(store, "aclose", aclose)
        await login(client)
        assert closed == []

    assert closed == [True]


def test_a_signing_key_is_taken_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = ECKey.generate_key("P-256", private=True)
    monkeypatch.setenv("TOKENPAIR_SIGNING_KEY", key.as_pem(private=True).decode())
    for framework in FRAMEWORKS:
        manager = example(framework).make_manager("memory://")

        assert manager.jwks()["keys"][0]["x"] == key.as_dict(private=False)["x"]


# -- a real OAuth 2.0 client ---------------------------------------------------


def _authlib_client() -> Any:
    # Authlib prefers the httpx2 package and warns when it falls back to httpx.
    import authlib.deprecate  # noqa: F401 - registers Authlib's warning filter

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="The httpx module is deprecated", category=Warning
        )
        from authlib.integrations.httpx_client import AsyncOAuth2Client
    return AsyncOAuth2Client


def _asgi_transport(app: Any) -> Any:
    try:
        import httpx2  # type: ignore[import-not-found]
    except ImportError:
        return httpx.ASGITransport(app=app)
    return httpx2.ASGITransport(app=app)


async def test_authlib_refreshes_through_the_token_endpoint(
    store_url: str,
) -> None:
    """Authlib's client, configured only with the token endpoint, refreshes
    an expired access token by itself; replaying the refresh token it gave
    up is then refused as reuse."""
    oauth_error = importlib.import_module("authlib.integrations.base_client").OAuthError
    # Authlib judges expiry by the wall clock, the server by its own: the
    # server's clock starts one access lifetime (and a little) back, so that
    # the first access token has run out for both once the server's clock
    # has moved past its expiry, and the next one is fresh for both.
    clock = FakeClock(start=time.time() - ACCESS_TTL - 30)
    app = example("fastapi").create_app(clock=clock)
    updates: list[tuple[dict[str, Any], str | None]] = []

    async def update_token(
        token: dict[str, Any], refresh_token: str | None = None, **_: Any
    ) -> None:
        updates.append((dict(token), refresh_token))

    async with (
        asgi_lifespan(app),
        _authlib_client()(
            client_id="spa",
            token_endpoint_auth_method="none",
            update_token=update_token,
            transport=_asgi_transport(app),
            base_url="http://testserver",
            token_endpoint="http://testserver/token",
        ) as client,
    ):

        async def me_with(access_token: str) -> int:
            headers = {"Authorization": f"Bearer {access_token}"}
            reply = await client.request(
                "GET", "/me", headers=headers, withhold_token=True
            )
            return int(reply.status_code)

        response = await client.request(
            "POST", "/login", json=GOOD_LOGIN, withhold_token=True
        )
        assert response.status_code == 200
        first = response.json()
        client.token = first
        assert await me_with(first["access_token"]) == 200
        clock.advance(ACCESS_TTL + 1)
        assert await me_with(first["access_token"]) == 401

        me = await client.get("/me")

        assert me.status_code == 200
        assert me.json() == {"sub": "alice", "name": "Alice"}
        assert len(updates) == 1
        renewed, given_up = updates[0]
        assert given_up == first["refresh_token"]
        assert renewed["refresh_token"] != first["refresh_token"]
        assert renewed["access_token"] != first["access_token"]
        assert client.token["access_token"] == renewed["access_token"]
        assert (await client.get("/me")).status_code == 200
        assert len(updates) == 1

        clock.advance(GRACE)
        replay = await client.request(
            "POST",
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": given_up},
            withhold_token=True,
        )
        assert replay.status_code == 400
        assert replay.json()["error"] == "invalid_grant"
        with pytest.raises(oauth_error) as refused:
            await client.refresh_token("http://testserver/token")
        assert refused.value.error == "invalid_grant"
