"""tokenpair in an aiohttp application.

Routes: ``POST /login`` (JSON username and password) issues a pair,
``GET /me`` needs a bearer token, ``POST /token`` refreshes,
``POST /revoke`` revokes, ``POST /logout-everywhere`` ends every session of
the caller, ``GET /.well-known/jwks.json`` publishes the public key.

Run it with ``python -m aiohttp.web -P 8080 docs.examples.aiohttp_app:init``;
``TOKENPAIR_STORE_URL`` chooses the store (``memory://`` by default).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio.to_thread
from aiohttp import web
from joserfc.jwk import ECKey

from tokenpair import TokenPairManager, open_store
from tokenpair.endpoints import (
    BearerError,
    EndpointResponse,
    authenticate_bearer,
    error_response,
    jwks_endpoint,
    revocation_endpoint,
    token_endpoint,
    token_response,
)

# A stand-in for the application's user database: one user, "alice", whose
# password "wonderland" is kept as a salted scrypt hash.
USERS: dict[str, dict[str, Any]] = {
    "alice": {
        "name": "Alice",
        "salt": bytes.fromhex("746f6b656e706169722d6578616d706c65"),
        "scrypt": bytes.fromhex(
            "edc5e6a60b667aeff510835303ae4de4e632211fcd43e5eed86eafdf72f75175"
        ),
    }
}


def check_password(username: str, password: str) -> dict[str, Any] | None:
    user = USERS.get(username)
    if user is None:
        return None
    digest = hashlib.scrypt(
        password.encode(), salt=user["salt"], n=2**14, r=8, p=1, dklen=32
    )
    return user if hmac.compare_digest(digest, user["scrypt"]) else None


def signing_key() -> str | ECKey:
    # A PEM-encoded P-256 private key from the environment. Without one, a key
    # is made at start-up and every token dies with the process.
    pem = os.environ.get("TOKENPAIR_SIGNING_KEY")
    return pem if pem else ECKey.generate_key("P-256", private=True)


def make_manager(
    store_url: str | None = None, clock: Callable[[], float] | None = None
) -> TokenPairManager:
    url = store_url or os.environ.get("TOKENPAIR_STORE_URL", "memory://")
    return TokenPairManager(
        signing_key(),
        algorithm="ES256",
        store=open_store(url),
        clock=clock,
        payload=lambda user: {"name": user["name"]},
    )


MANAGER = web.AppKey("manager", TokenPairManager)
routes = web.RouteTableDef()


def respond(result: EndpointResponse) -> web.Response:
    return web.Response(
        body=result.json_bytes(), status=result.status, headers=result.headers
    )


async def claims_of(request: web.Request) -> dict[str, Any]:
    return await authenticate_bearer(
        request.app[MANAGER], request.headers.get("Authorization")
    )


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    try:
        credentials = json.loads(await request.read())
        username, password = credentials["username"], credentials["password"]
    except (ValueError, TypeError, KeyError):
        username = password = None
    if not isinstance(username, str) or not isinstance(password, str):
        return respond(error_response("invalid_request", "send username, password"))
    user = await anyio.to_thread.run_sync(check_password, username, password)
    if user is None:
        return respond(error_response("invalid_grant", "wrong username or password"))
    manager = request.app[MANAGER]
    pair = await manager.generate_token_pair({"sub": username, "name": user["name"]})
    return respond(token_response(manager, pair))


@routes.get("/me")
async def me(request: web.Request) -> web.Response:
    claims = await claims_of(request)
    return web.json_response({"sub": claims["sub"], "name": claims["name"]})


@routes.post("/token")
async def token(request: web.Request) -> web.Response:
    # aiohttp's form is a multidict: a repeated parameter is seen and refused.
    form = await request.post()
    return respond(await token_endpoint(request.app[MANAGER], form))


@routes.post("/revoke")
async def revoke(request: web.Request) -> web.Response:
    form = await request.post()
    return respond(await revocation_endpoint(request.app[MANAGER], form))


@routes.post("/logout-everywhere")
async def logout_everywhere(request: web.Request) -> web.Response:
    claims = await claims_of(request)
    revoked = await request.app[MANAGER].revoke_subject(claims["sub"])
    return web.json_response({"revoked": revoked})


@routes.get("/.well-known/jwks.json")
async def jwks(request: web.Request) -> web.Response:
    return respond(jwks_endpoint(request.app[MANAGER]))


@web.middleware
async def bearer_errors(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    try:
        return await handler(request)
    except BearerError as exc:
        return respond(exc.response)


def create_app(
    *, store_url: str | None = None, clock: Callable[[], float] | None = None
) -> web.Application:
    """The application; ``clock`` is for tests that let time pass."""
    app = web.Application(middlewares=[bearer_errors])
    app[MANAGER] = make_manager(store_url, clock)

    async def manager_lifetime(app: web.Application) -> AsyncIterator[None]:
        async with app[MANAGER]:
            yield

    app.cleanup_ctx.append(manager_lifetime)
    app.add_routes(routes)
    return app


def init(argv: list[str] | None = None) -> web.Application:
    """The entry point of ``python -m aiohttp.web``."""
    return create_app()
