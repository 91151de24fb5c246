"""tokenpair in a Litestar application.

Routes: ``POST /login`` (JSON username and password) issues a pair,
``GET /me`` needs a bearer token, ``POST /token`` refreshes,
``POST /revoke`` revokes, ``POST /logout-everywhere`` ends every session of
the caller, ``GET /.well-known/jwks.json`` publishes the public key.

Run it with ``litestar --app docs.examples.litestar_app:create_app run``;
``TOKENPAIR_STORE_URL`` chooses the store (``memory://`` by default).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import anyio.to_thread
from joserfc.jwk import ECKey
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

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


def respond(result: EndpointResponse) -> Response[bytes]:
    return Response(
        result.json_bytes(),
        status_code=result.status,
        headers=result.headers,
        media_type=result.media_type,
    )


# Dependencies, provided by name in create_app().
Manager = NamedDependency[TokenPairManager]
Claims = NamedDependency[dict[str, Any]]


def provide_manager(state: State) -> TokenPairManager:
    manager: TokenPairManager = state.manager
    return manager


async def provide_claims(
    request: Request[Any, Any, Any], manager: Manager
) -> dict[str, Any]:
    return await authenticate_bearer(manager, request.headers.get("Authorization"))


@dataclass
class Credentials:
    username: str
    password: str


@post("/login")
async def login(data: JSONBody[Credentials], manager: Manager) -> Response[bytes]:
    user = await anyio.to_thread.run_sync(check_password, data.username, data.password)
    if user is None:
        return respond(error_response("invalid_grant", "wrong username or password"))
    pair = await manager.generate_token_pair(
        {"sub": data.username, "name": user["name"]}
    )
    return respond(token_response(manager, pair))


@get("/me")
async def me(claims: Claims) -> dict[str, Any]:
    return {"sub": claims["sub"], "name": claims["name"]}


@post("/token")
async def token(request: Request[Any, Any, Any], manager: Manager) -> Response[bytes]:
    # Litestar's form is a multidict: a repeated parameter is seen and refused.
    return respond(await token_endpoint(manager, await request.form()))


@post("/revoke")
async def revoke(request: Request[Any, Any, Any], manager: Manager) -> Response[bytes]:
    return respond(await revocation_endpoint(manager, await request.form()))


@post("/logout-everywhere", status_code=200)
async def logout_everywhere(claims: Claims, manager: Manager) -> dict[str, int]:
    return {"revoked": await manager.revoke_subject(claims["sub"])}


@get("/.well-known/jwks.json")
async def jwks(manager: Manager) -> Response[bytes]:
    return respond(jwks_endpoint(manager))


def bearer_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    # Registered for BearerError only.
    return respond(cast(BearerError, exc).response)


def create_app(
    *, store_url: str | None = None, clock: Callable[[], float] | None = None
) -> Litestar:
    """The application; ``clock`` is for tests that let time pass."""
    manager = make_manager(store_url, clock)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with manager:
            yield

    return Litestar(
        route_handlers=[login, me, token, revoke, logout_everywhere, jwks],
        dependencies={
            "manager": Provide(provide_manager, sync_to_thread=False),
            "claims": Provide(provide_claims),
        },
        exception_handlers={BearerError: bearer_error},
        lifespan=[lifespan],
        state=State({"manager": manager}),
    )
