"""tokenpair in a FastAPI application.

Routes: ``POST /login`` (JSON username and password) issues a pair,
``GET /me`` needs a bearer token, ``POST /token`` refreshes,
``POST /revoke`` revokes, ``POST /logout-everywhere`` ends every session of
the caller, ``GET /.well-known/jwks.json`` publishes the public key.

Run it with ``uvicorn --factory docs.examples.fastapi_app:create_app``;
``TOKENPAIR_STORE_URL`` chooses the store (``memory://`` by default).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from joserfc.jwk import ECKey
from pydantic import BaseModel

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


async def current_claims(request: Request) -> dict[str, Any]:
    return await authenticate_bearer(
        manager_of(request), request.headers.get("Authorization")
    )


Claims = Annotated[dict[str, Any], Depends(current_claims)]


router = APIRouter()


class Credentials(BaseModel):
    username: str
    password: str


@router.post("/login")
async def login(credentials: Credentials, request: Request) -> Response:
    user = await anyio.to_thread.run_sync(
        check_password, credentials.username, credentials.password
    )
    if user is None:
        return respond(error_response("invalid_grant", "wrong username or password"))
    manager = manager_of(request)
    pair = await manager.generate_token_pair(
        {"sub": credentials.username, "name": user["name"]}
    )
    return respond(token_response(manager, pair))


@router.get("/me")
async def me(claims: Claims) -> dict[str, Any]:
    return {"sub": claims["sub"], "name": claims["name"]}


@router.post("/token")
async def token(request: Request) -> Response:
    form = parse_form(await request.body())
    return respond(await token_endpoint(manager_of(request), form))


@router.post("/revoke")
async def revoke(request: Request) -> Response:
    form = parse_form(await request.body())
    return respond(await revocation_endpoint(manager_of(request), form))


@router.post("/logout-everywhere")
async def logout_everywhere(claims: Claims, request: Request) -> dict[str, int]:
    revoked = await manager_of(request).revoke_subject(claims["sub"])
    return {"revoked": revoked}


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> Response:
    return respond(jwks_endpoint(manager_of(request)))


async def bearer_error(request: Request, exc: BearerError) -> Response:
    return respond(exc.response)


def create_app(
    *, store_url: str | None = None, clock: Callable[[], float] | None = None
) -> FastAPI:
    """The application; ``clock`` is for tests that let time pass."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with app.state.manager:
            yield

    app = FastAPI(lifespan=lifespan, exception_handlers={BearerError: bearer_error})
    app.state.manager = make_manager(store_url, clock)
    app.include_router(router)
    return app
