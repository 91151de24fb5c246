"""tokenpair in a single-file Django project, with async views.

Routes: ``POST /login`` (JSON username and password) issues a pair,
``GET /me`` needs a bearer token, ``POST /token`` refreshes,
``POST /revoke`` revokes, ``POST /logout-everywhere`` ends every session of
the caller, ``GET /.well-known/jwks.json`` publishes the public key.

Run it with ``uvicorn --factory docs.examples.django_app:create_app``;
``TOKENPAIR_STORE_URL`` chooses the store (``memory://`` by default).
The routes take no cookies, so no CSRF middleware is installed.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio.to_thread
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(32),
        ALLOWED_HOSTS=os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost").split(","),
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        DATABASES={},
        USE_TZ=True,
    )

from django.core.asgi import get_asgi_application
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.http import require_GET, require_POST
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


# One project, one manager: create_app() sets it, the views use it.
_manager: TokenPairManager | None = None


def manager() -> TokenPairManager:
    if _manager is None:
        raise RuntimeError("create_app() has not been called")
    return _manager


def respond(result: EndpointResponse) -> HttpResponse:
    return HttpResponse(
        result.json_bytes(), status=result.status, headers=result.headers
    )


View = Callable[..., Awaitable[HttpResponse]]


def bearer_required(view: View) -> View:
    """Pass the access token's claims to ``view``, or answer the challenge."""

    @functools.wraps(view)
    async def protected(request: HttpRequest) -> HttpResponse:
        try:
            claims = await authenticate_bearer(
                manager(), request.headers.get("Authorization")
            )
        except BearerError as exc:
            return respond(exc.response)
        return await view(request, claims)

    return protected


@require_POST
async def login(request: HttpRequest) -> HttpResponse:
    try:
        credentials = json.loads(request.body)
        username, password = credentials["username"], credentials["password"]
    except (ValueError, TypeError, KeyError):
        username = password = None
    if not isinstance(username, str) or not isinstance(password, str):
        return respond(error_response("invalid_request", "send username, password"))
    user = await anyio.to_thread.run_sync(check_password, username, password)
    if user is None:
        return respond(error_response("invalid_grant", "wrong username or password"))
    pair = await manager().generate_token_pair({"sub": username, "name": user["name"]})
    return respond(token_response(manager(), pair))


@require_GET
@bearer_required
async def me(request: HttpRequest, claims: dict[str, Any]) -> HttpResponse:
    return JsonResponse({"sub": claims["sub"], "name": claims["name"]})


@require_POST
async def token(request: HttpRequest) -> HttpResponse:
    # request.POST is a QueryDict: a repeated parameter is seen and refused.
    return respond(await token_endpoint(manager(), request.POST))


@require_POST
async def revoke(request: HttpRequest) -> HttpResponse:
    return respond(await revocation_endpoint(manager(), request.POST))


@require_POST
@bearer_required
async def logout_everywhere(
    request: HttpRequest, claims: dict[str, Any]
) -> HttpResponse:
    return JsonResponse({"revoked": await manager().revoke_subject(claims["sub"])})


@require_GET
async def jwks(request: HttpRequest) -> HttpResponse:
    return respond(jwks_endpoint(manager()))


urlpatterns = [
    path("login", login),
    path("me", me),
    path("token", token),
    path("revoke", revoke),
    path("logout-everywhere", logout_everywhere),
    path(".well-known/jwks.json", jwks),
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ClosesManager:
    """Django's ASGI handler ignores the lifespan protocol; this wrapper
    answers it and closes the manager when the server shuts down."""

    def __init__(self, app: ASGIApp, manager: TokenPairManager) -> None:
        self.app = app
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.manager.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(
    *, store_url: str | None = None, clock: Callable[[], float] | None = None
) -> ClosesManager:
    """The ASGI application; ``clock`` is for tests that let time pass."""
    global _manager
    _manager = make_manager(store_url, clock)
    return ClosesManager(get_asgi_application(), _manager)
