"""tokenpair in a Starlette application.

Routes: ``POST /login`` (JSON username and password) issues a pair,
``GET /me`` needs a bearer token, ``POST /token`` refreshes,
``POST /revoke`` revokes, ``POST /logout-everywhere`` ends every session of
the caller, ``GET /.well-known/jwks.json`` publishes the public key.

Run it with ``uvicorn --factory docs.examples.starlette_app:create_app``;
``TOKENPAIR_STORE_URL`` chooses the store (``memory://`` by default).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio.to_thread
from joserfc.jwk import ECKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tokenpair import TokenPairManager, open_store
from tokenpair.endpoints import (
    BearerError,
    EndpointResponse,
    authenticate_bearer,
    error_response,
    jwks_endpoint,
    parse_form,
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


def respond(result: EndpointResponse) -> Response:
    return Response(result.json_bytes(), result.status, result.headers)


def manager_of(request: Request) -> TokenPairManager:
    manager: TokenPairManager = request.app.state.manager
    return manager


async def claims_of(request: Request) -> dict[str, Any]:
    return await authenticate_bearer(
        manager_of(request), request.headers.get("Authorization")
    )


async def login(request: Request) -> Response:
    try:
        credentials = json.loads(await request.body())
        username, password = credentials["username"], credentials["password"]
    except (ValueError, TypeError, KeyError):
        username = password = None
    if not isinstance(username, str) or not isinstance(password, str):
        return respond(error_response("invalid_request", "send username, password"))
    user = await anyio.to_thread.run_sync(check_password, username, password)
    if user is None:
        return respond(error_response("invalid_grant", "wrong username or password"))
    manager = manager_of(request)
    pair = await manager.generate_token_pair({"sub": username, "name": user["name"]})
    return respond(token_response(manager, pair))


async def me(request: Request) -> Response:
    claims = await claims_of(request)
    return JSONResponse({"sub": claims["sub"], "name": claims["name"]})


async def token(request: Request) -> Response:
    form = parse_form(await request.body())
    return respond(await token_endpoint(manager_of(request), form))


async def revoke(request: Request) -> Response:
    form = parse_form(await request.body())
    return respond(await revocation_endpoint(manager_of(request), form))


async def logout_everywhere(request: Request) -> Response:
    claims = await claims_of(request)
    revoked = await manager_of(request).revoke_subject(claims["sub"])
    return JSONResponse({"revoked": revoked})


async def jwks(request: Request) -> Response:
    return respond(jwks_endpoint(manager_of(request)))


async def bearer_error(request: Request, exc: Exception) -> Response:
    # Registered for BearerError only.
    return respond(cast(BearerError, exc).response)


def create_app(
    *, store_url: str | None = None, clock: Callable[[], float] | None = None
) -> Starlette:
    """The application; ``clock`` is for tests that let time pass."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with app.state.manager:
            yield

    app = Starlette(
        routes=[
            Route("/login", login, methods=["POST"]),
            Route("/me", me),
            Route("/token", token, methods=["POST"]),
            Route("/revoke", revoke, methods=["POST"]),
            Route("/logout-everywhere", logout_everywhere, methods=["POST"]),
            Route("/.well-known/jwks.json", jwks),
        ],
        exception_handlers={BearerError: bearer_error},
        lifespan=lifespan,
    )
    app.state.manager = make_manager(store_url, clock)
    return app
