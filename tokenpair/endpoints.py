"""OAuth 2.0 endpoints for any web framework.

Each function takes a :class:`~tokenpair.TokenPairManager` and the request's
form parameters and returns an :class:`EndpointResponse` (status, headers and
a JSON body) that the application turns into its framework's response::

    form = parse_form(await request.body())
    response = await token_endpoint(manager, form)
    return Response(response.json_bytes(), response.status, response.headers)

The form may be any mapping of parameter names to values: a ``dict`` of
strings, the ``dict`` of lists :func:`parse_form` returns, or a framework's
multi-valued form (anything with ``getall`` or ``getlist``), so that a
parameter given twice is refused as RFC 6749 (section 3.2) asks.

The endpoints do not authenticate clients: an application with confidential
clients checks their credentials before calling them, and answers a failure
with :func:`error_response` (``invalid_client``, status 401).

Error bodies carry an OAuth error code and a description taken from
tokenpair's exceptions, which never quote a token; a backend failure answers
``server_error`` with no detail at all.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ._errors import (
    InvalidAccessTokenError,
    RefreshTokenError,
    TokenPairError,
)
from ._manager import TokenPairManager
from ._refresh import looks_like_refresh
from ._token import Token

__all__ = [
    # responses
    "EndpointResponse",
    "token_response",
    "error_response",
    # endpoints
    "token_endpoint",
    "revocation_endpoint",
    "introspection_endpoint",
    "jwks_endpoint",
    # protecting routes
    "authenticate_bearer",
    "BearerError",
    # parsing
    "parse_form",
]

logger = logging.getLogger("tokenpair.endpoints")

_JSON: Final = "application/json"
_JWK_SET: Final = "application/jwk-set+json"
# Token responses and anything describing a token must not be cached
# (RFC 6749 section 5.1); Pragma is for HTTP/1.0 caches.
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}

_SERVER_ERROR_DESCRIPTION = "the server could not complete the request"
# RFC 6749 allows %x20-21 / %x23-5B / %x5D-7E in error_description: no quote,
# no backslash, nothing outside printable ASCII.
_NOT_ALLOWED_IN_DESCRIPTION = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")
# RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~"
# / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


@dataclass(frozen=True, slots=True)
class EndpointResponse:
    """What an endpoint answers: status, headers and a JSON object.

    ``headers`` include ``Content-Type``. The repr leaves out the body, which
    may hold tokens.
    """

    status: int
    headers: dict[str, str]
    body: dict[str, Any] = field(repr=False)

    @property
    def media_type(self) -> str:
        """The ``Content-Type`` header's value."""
        return self.headers.get("Content-Type", _JSON)

    def json_bytes(self) -> bytes:
        """The body as compact UTF-8 JSON."""
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8"
        )


class BearerError(Exception):
    """A request to a protected route carries no usable bearer token.

    ``response`` is the answer RFC 6750 (section 3) prescribes: 401 with a
    ``WWW-Authenticate: Bearer`` challenge, naming ``error="invalid_token"``
    when a token was given but is not valid, or 400 ``invalid_request`` when
    the ``Authorization`` header is malformed. ``error`` is that code, or
    ``None`` when the request had no bearer credentials at all.
    """

    def __init__(self, response: EndpointResponse, error: str | None) -> None:
        super().__init__(error or "no bearer token was given")
        self.response = response
        self.error = error

    def __repr__(self) -> str:
        return f"BearerError(status={self.response.status}, error={self.error!r})"


class _Refusal(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


# -- building responses ------------------------------------------------------


def token_response(manager: TokenPairManager, token: Token) -> EndpointResponse:
    """The successful token response (RFC 6749 section 5.1) for ``token``,
    with ``expires_in`` measured on the manager's clock; for a login route
    that issues a pair itself."""
    return EndpointResponse(
        200,
        {"Content-Type": _JSON, **_NO_STORE},
        token.to_dict(manager.now()),
    )


def error_response(
    error: str,
    description: str | None = None,
    *,
    status: int = 400,
    headers: Mapping[str, str] | None = None,
) -> EndpointResponse:
    """An OAuth 2.0 error response (RFC 6749 section 5.2).

    For errors of the application's own, such as a failed client
    authentication::

        error_response(
            "invalid_client",
            "client authentication failed",
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="token"'},
        )

    The description is reduced to the characters the RFC allows.
    """
    body: dict[str, Any] = {"error": error}
    if description:
        body["error_description"] = _clean(description)
    return EndpointResponse(
        status, {"Content-Type": _JSON, **_NO_STORE, **(headers or {})}, body
    )


# -- the endpoints -----------------------------------------------------------


async def token_endpoint(
    manager: TokenPairManager, form: Mapping[str, object]
) -> EndpointResponse:
    """The token endpoint for ``grant_type=refresh_token`` (RFC 6749 section 6).

    Rotates the presented refresh token and answers 200 with the new pair.
    Refusals answer 400: ``invalid_request`` when ``grant_type`` or
    ``refresh_token`` is missing, empty or repeated, ``unsupported_grant_type``
    for any other grant, ``invalid_scope`` when a ``scope`` is asked for
    (tokenpair grants none, so any requested scope exceeds the grant), and
    ``invalid_grant`` when the refresh token is invalid, expired, revoked or
    reused. A store failure answers 500 ``server_error`` without details.
    Other parameters, ``client_id`` among them, are ignored.
    """
    try:
        grant_type = _parameter(form, "grant_type")
        if grant_type is None:
            raise _Refusal("invalid_request", "the grant_type parameter is missing")
        if grant_type != "refresh_token":
            raise _Refusal(
                "unsupported_grant_type",
                "this endpoint accepts grant_type=refresh_token only",
            )
        refresh_token = _parameter(form, "refresh_token")
        if refresh_token is None:
            raise _Refusal("invalid_request", "the refresh_token parameter is missing")
        if _parameter(form, "scope") is not None:
            raise _Refusal(
                "invalid_scope", "scopes are not granted; omit the scope parameter"
            )
    except _Refusal as refusal:
        return error_response(refusal.error, refusal.description)
    try:
        token = await manager.refresh(refresh_token)
    except RefreshTokenError as exc:
        return error_response(exc.error, exc.description)
    except TokenPairError as exc:
        return _server_error("token", exc)
    return token_response(manager, token)


async def revocation_endpoint(
    manager: TokenPairManager, form: Mapping[str, object]
) -> EndpointResponse:
    """Token revocation (RFC 7009).

    A refresh token's whole family is revoked. Anything that is not a live
    token of this manager (unknown, expired, already revoked, forged) answers
    200 as well, since there is nothing left to revoke. A live access token
    answers 400 ``unsupported_token_type``: access tokens are self-contained
    and stay valid until they expire, so the client revokes the refresh token
    instead (or the application logs the subject out everywhere). The kind
    of token is told from the token itself; ``token_type_hint`` is accepted
    and not needed. A missing or repeated ``token`` answers 400
    ``invalid_request``; a store failure answers 503, after which the client
    must assume the token is still valid and retry later (RFC 7009 section
    2.2.1).
    """
    try:
        token = _parameter(form, "token")
        if token is None:
            raise _Refusal("invalid_request", "the token parameter is missing")
        _parameter(form, "token_type_hint")
    except _Refusal as refusal:
        return error_response(refusal.error, refusal.description)
    try:
        if looks_like_refresh(token):
            await manager.revoke(token)
        else:
            try:
                await manager.authenticate(token)
            except InvalidAccessTokenError:
                pass
            else:
                return error_response(
                    "unsupported_token_type",
                    "access tokens cannot be revoked one by one; they expire on "
                    "their own, so revoke the refresh token instead",
                )
    except TokenPairError as exc:
        return _server_error("revocation", exc, status=503)
    return EndpointResponse(200, {"Content-Type": _JSON, **_NO_STORE}, {})


async def introspection_endpoint(
    manager: TokenPairManager, form: Mapping[str, object]
) -> EndpointResponse:
    """Token introspection (RFC 7662): 200 with the token's description.

    An invalid, expired, revoked or foreign token is ``{"active": false}``,
    never an error. A missing or repeated ``token`` answers 400
    ``invalid_request``; a store failure answers 500 ``server_error``, since
    "unknown" must not read as "inactive". RFC 7662 requires the caller to be
    authorised: the application checks that before calling.
    """
    try:
        token = _parameter(form, "token")
        if token is None:
            raise _Refusal("invalid_request", "the token parameter is missing")
        hint = _parameter(form, "token_type_hint")
    except _Refusal as refusal:
        return error_response(refusal.error, refusal.description)
    try:
        described = await manager.introspect(token, hint)
    except TokenPairError as exc:
        return _server_error("introspection", exc)
    return EndpointResponse(200, {"Content-Type": _JSON, **_NO_STORE}, described)


def jwks_endpoint(manager: TokenPairManager) -> EndpointResponse:
    """The public keys as a JWK Set (RFC 7517), for resource servers that
    verify access tokens themselves. HMAC secrets are never published, so a
    manager with only HMAC keys answers an empty set."""
    return EndpointResponse(200, {"Content-Type": _JWK_SET}, manager.jwks())


# -- protecting routes -------------------------------------------------------


async def authenticate_bearer(
    manager: TokenPairManager,
    authorization: str | None,
    *,
    realm: str | None = None,
) -> dict[str, Any]:
    """Check the ``Authorization`` header of a request to a protected route
    and return the access token's claims.

    Raises :class:`BearerError` holding the response RFC 6750 prescribes: 401
    with ``WWW-Authenticate: Bearer`` when there is no bearer token (another
    scheme, or no header), 401 with ``error="invalid_token"`` when the token
    is invalid, expired or issued before its subject was logged out
    everywhere, 400 ``invalid_request`` when the header is malformed. A store
    failure raises :class:`~tokenpair.StoreError`, for the application to
    answer as any other internal failure.
    """
    challenge = [] if realm is None else [f'realm="{_clean(realm)}"']
    if not authorization or not authorization.strip():
        raise _bearer_error(401, challenge, None, None)
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise _bearer_error(401, challenge, None, None)
    credentials = credentials.strip(" ")
    if not credentials:
        raise _bearer_error(
            400, challenge, "invalid_request", "the bearer token is missing"
        )
    if _B64TOKEN.fullmatch(credentials) is None:
        raise _bearer_error(
            400, challenge, "invalid_request", "the Authorization header is malformed"
        )
    try:
        return await manager.authenticate(credentials)
    except InvalidAccessTokenError as exc:
        raise _bearer_error(401, challenge, exc.error, exc.description) from None


def _bearer_error(
    status: int, challenge: list[str], error: str | None, description: str | None
) -> BearerError:
    parameters = list(challenge)
    body: dict[str, Any] = {}
    if error is not None:
        parameters.append(f'error="{error}"')
        body["error"] = error
        if description:
            parameters.append(f'error_description="{_clean(description)}"')
            body["error_description"] = _clean(description)
    header = " ".join(["Bearer", ", ".join(parameters)]).rstrip()
    headers = {"Content-Type": _JSON, "WWW-Authenticate": header}
    return BearerError(EndpointResponse(status, headers, body), error)


# -- parsing -----------------------------------------------------------------


def parse_form(body: bytes | str) -> dict[str, list[str]]:
    """Parse an ``application/x-www-form-urlencoded`` body, keeping every
    value of a repeated parameter and empty values too.

    For frameworks whose form parsing needs an extra package. Bytes that are
    not UTF-8 become replacement characters, which no token contains, so a
    garbled value is refused like any other wrong one.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    parsed: dict[str, list[str]] = {}
    for name, value in urllib.parse.parse_qsl(
        text, keep_blank_values=True, errors="replace"
    ):
        parsed.setdefault(name, []).append(value)
    return parsed


def _parameter(form: Mapping[str, object], name: str) -> str | None:
    """The single value of ``name``, or ``None`` when it is absent or empty
    (RFC 6749 section 3.1 treats an empty parameter as omitted)."""
    values = _values(form, name)
    if len(values) > 1:
        raise _Refusal("invalid_request", f"the {name} parameter is repeated")
    if not values:
        return None
    value = values[0]
    if not isinstance(value, str):
        raise _Refusal("invalid_request", f"the {name} parameter is not text")
    return value or None


def _values(form: Mapping[str, object], name: str) -> list[object]:
    # Multi-valued mappings show one value through the Mapping interface;
    # their own accessors reveal repeats: getall (multidict: aiohttp,
    # Litestar) and getlist (Starlette, Django, Werkzeug).
    getall = getattr(form, "getall", None)
    if callable(getall):
        return list(getall(name, []))
    getlist = getattr(form, "getlist", None)
    if callable(getlist):
        return list(getlist(name))
    if name not in form:
        return []
    value = form[name]
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    return [value]


def _clean(text: str) -> str:
    return _NOT_ALLOWED_IN_DESCRIPTION.sub("?", text)


def _server_error(
    endpoint: str, exc: TokenPairError, *, status: int = 500
) -> EndpointResponse:
    cause = exc.__cause__
    logger.warning(
        "the %s endpoint answered %d: %s: %s%s",
        endpoint,
        status,
        type(exc).__name__,
        exc.description,
        "" if cause is None else f" (caused by {type(cause).__name__})",
    )
    return error_response("server_error", _SERVER_ERROR_DESCRIPTION, status=status)
