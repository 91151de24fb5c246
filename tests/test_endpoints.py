"""The framework-free OAuth 2.0 endpoints of ``tokenpair.endpoints``."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import multidict
import pytest
from joserfc.jwk import ECKey
from starlette.datastructures import FormData

from tokenpair import MemoryStore, StoreError, Token, TokenPairManager
from tokenpair.endpoints import (
    BearerError,
    EndpointResponse,
    authenticate_bearer,
    error_response,
    introspection_endpoint,
    jwks_endpoint,
    parse_form,
    revocation_endpoint,
    token_endpoint,
    token_response,
)
from tokenpair.testing import FakeClock

pytestmark = pytest.mark.anyio

SECRET = "endpoint-tests-secret-of-at-least-32-bytes"
ACCESS_TTL = 300
REFRESH_TTL = 3600
GRACE = 10
# Shaped like a refresh token of a family that never existed, with a tag that
# no key produced.
FORGED = "tpr1.AAAAAAAAAAAAAAAAAAAAAA." + "A" * 64


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class BrokenStore(MemoryStore):
    """A memory store whose backend can be made to fail on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    def _check(self) -> None:
        if self.broken:
            try:
                raise ConnectionError("connect to db://admin:hunter2@10.0.0.9 failed")
            except ConnectionError as exc:
                raise StoreError("the store could not be reached") from exc

    async def rotate(self, rotation: Any) -> Any:
        self._check()
        return await super().rotate(rotation)

    async def get_family(self, family_id: str) -> Any:
        self._check()
        return await super().get_family(family_id)

    async def revoke_family(self, family_id: str, now: float) -> None:
        self._check()
        await super().revoke_family(family_id, now)

    async def subject_revoked_at(self, subject: str, now: float) -> float | None:
        self._check()
        return await super().subject_revoked_at(subject, now)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> BrokenStore:
    return BrokenStore()


@pytest.fixture
async def manager(
    clock: FakeClock, store: BrokenStore
) -> AsyncIterator[TokenPairManager]:
    async with TokenPairManager(
        SECRET,
        store=store,
        clock=clock,
        access_ttl=ACCESS_TTL,
        refresh_ttl=REFRESH_TTL,
        reuse_grace=GRACE,
    ) as manager:
        yield manager


@pytest.fixture
async def pair(manager: TokenPairManager) -> Token:
    return await manager.generate_token_pair({"sub": "alice"})


def body_of(response: EndpointResponse) -> dict[str, Any]:
    decoded = json.loads(response.json_bytes())
    assert decoded == response.body
    return dict(decoded)


def assert_no_store(response: EndpointResponse) -> None:
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def assert_error(
    response: EndpointResponse,
    error: str,
    *,
    status: int = 400,
    secrets: tuple[str, ...] = (),
) -> dict[str, Any]:
    """An OAuth error response that quotes none of ``secrets``."""
    assert response.status == status
    assert response.headers["Content-Type"] == "application/json"
    body = body_of(response)
    assert body["error"] == error
    description = body.get("error_description", "")
    assert isinstance(description, str)
    assert '"' not in description
    assert "\\" not in description
    assert description.isascii()
    raw = response.json_bytes().decode()
    for secret in secrets:
        assert secret not in raw
        assert secret not in repr(response)
    return body


def refresh_form(refresh_token: str, **extra: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}


# -- the token endpoint ------------------------------------------------------


async def test_a_refresh_answers_a_token_response(
    manager: TokenPairManager, pair: Token, clock: FakeClock
) -> None:
    """200 with the RFC 6749 section 5.1 fields, never to be cached."""
    clock.advance(100)

    response = await token_endpoint(manager, refresh_form(pair.refresh_token))

    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert_no_store(response)
    body = body_of(response)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == ACCESS_TTL
    assert body["refresh_token"] != pair.refresh_token
    claims = await manager.authenticate(body["access_token"])
    assert claims["sub"] == "alice"
    again = await token_endpoint(manager, refresh_form(body["refresh_token"]))
    assert again.status == 200


async def test_client_id_and_empty_scope_are_accepted(
    manager: TokenPairManager, pair: Token
) -> None:
    """Client authentication is the application's; an empty scope is an
    omitted one (RFC 6749 section 3.1)."""
    form = refresh_form(pair.refresh_token, client_id="spa", scope="")

    response = await token_endpoint(manager, form)

    assert response.status == 200


@pytest.mark.parametrize(
    ("form", "description"),
    [
        ({}, "grant_type"),
        ({"grant_type": ""}, "grant_type"),
        ({"grant_type": ["refresh_token", "refresh_token"]}, "repeated"),
        ({"grant_type": "refresh_token"}, "refresh_token"),
        ({"grant_type": "refresh_token", "refresh_token": ""}, "refresh_token"),
        ({"grant_type": "refresh_token", "refresh_token": []}, "refresh_token"),
        ({"grant_type": "refresh_token", "refresh_token": b"tpr1.x"}, "not text"),
    ],
)
async def test_malformed_token_requests_are_invalid_request(
    manager: TokenPairManager, form: Mapping[str, object], description: str
) -> None:
    response = await token_endpoint(manager, form)

    body = assert_error(response, "invalid_request")
    assert description in body["error_description"]
    assert_no_store(response)


async def test_a_repeated_refresh_token_is_refused_and_nothing_rotates(
    manager: TokenPairManager, pair: Token
) -> None:
    token = pair.refresh_token
    form = {"grant_type": ["refresh_token"], "refresh_token": [token, token]}

    response = await token_endpoint(manager, form)

    assert_error(response, "invalid_request", secrets=(token,))
    assert (await token_endpoint(manager, refresh_form(token))).status == 200


@pytest.mark.parametrize(
    "form_type", [multidict.MultiDict, FormData], ids=["getall", "getlist"]
)
async def test_repeats_are_seen_in_framework_multidicts(
    manager: TokenPairManager, pair: Token, form_type: Any
) -> None:
    """aiohttp and Litestar forms answer getall, Starlette and Django getlist;
    their plain Mapping view would hide the repeat."""
    items = [
        ("grant_type", "refresh_token"),
        ("refresh_token", pair.refresh_token),
        ("refresh_token", FORGED),
    ]
    response = await token_endpoint(manager, form_type(items))

    assert_error(response, "invalid_request", secrets=(pair.refresh_token,))
    single = form_type(items[:2])
    assert (await token_endpoint(manager, single)).status == 200


@pytest.mark.parametrize(
    "grant_type",
    ["authorization_code", "password", "client_credentials", "REFRESH_TOKEN"],
)
async def test_other_grants_are_unsupported(
    manager: TokenPairManager, pair: Token, grant_type: str
) -> None:
    form = {"grant_type": grant_type, "refresh_token": pair.refresh_token}

    response = await token_endpoint(manager, form)

    assert_error(response, "unsupported_grant_type", secrets=(pair.refresh_token,))
    assert_no_store(response)


async def test_a_requested_scope_is_refused_before_anything_rotates(
    manager: TokenPairManager, pair: Token
) -> None:
    form = refresh_form(pair.refresh_token, scope="admin")

    response = await token_endpoint(manager, form)

    assert_error(response, "invalid_scope", secrets=(pair.refresh_token,))
    assert (
        await token_endpoint(manager, refresh_form(pair.refresh_token))
    ).status == 200


async def test_unusable_refresh_tokens_are_invalid_grant(
    manager: TokenPairManager, pair: Token
) -> None:
    for token in (FORGED, "not-a-token", pair.access_token, pair.refresh_token[:-1]):
        response = await token_endpoint(manager, refresh_form(token))

        assert_error(response, "invalid_grant", secrets=(token, pair.refresh_token))
        assert_no_store(response)


async def test_an_expired_refresh_token_is_invalid_grant(
    manager: TokenPairManager, pair: Token, clock: FakeClock
) -> None:
    clock.advance(REFRESH_TTL)

    response = await token_endpoint(manager, refresh_form(pair.refresh_token))

    body = assert_error(response, "invalid_grant", secrets=(pair.refresh_token,))
    assert "expired" in body["error_description"]


async def test_a_revoked_refresh_token_is_invalid_grant(
    manager: TokenPairManager, pair: Token
) -> None:
    await manager.revoke(pair.refresh_token)

    response = await token_endpoint(manager, refresh_form(pair.refresh_token))

    body = assert_error(response, "invalid_grant", secrets=(pair.refresh_token,))
    assert "revoked" in body["error_description"]


async def test_a_retry_within_the_grace_window_is_answered(
    manager: TokenPairManager, pair: Token, clock: FakeClock
) -> None:
    await token_endpoint(manager, refresh_form(pair.refresh_token))
    clock.advance(GRACE - 1)

    response = await token_endpoint(manager, refresh_form(pair.refresh_token))

    assert response.status == 200


async def test_reuse_is_invalid_grant_and_ends_the_family(
    manager: TokenPairManager, pair: Token, clock: FakeClock
) -> None:
    first = body_of(await token_endpoint(manager, refresh_form(pair.refresh_token)))
    clock.advance(GRACE)

    response = await token_endpoint(manager, refresh_form(pair.refresh_token))

    body = assert_error(
        response,
        "invalid_grant",
        secrets=(pair.refresh_token, first["refresh_token"], first["access_token"]),
    )
    assert "already used" in body["error_description"]
    later = await token_endpoint(manager, refresh_form(first["refresh_token"]))
    assert_error(later, "invalid_grant")


async def test_a_store_failure_is_a_bare_server_error(
    manager: TokenPairManager,
    pair: Token,
    store: BrokenStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store.broken = True

    with caplog.at_level(logging.DEBUG, logger="tokenpair"):
        response = await token_endpoint(manager, refresh_form(pair.refresh_token))

    body = assert_error(
        response, "server_error", status=500, secrets=(pair.refresh_token, "hunter2")
    )
    assert "store" not in body["error_description"]
    assert_no_store(response)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "ConnectionError" in caplog.text
    assert "hunter2" not in caplog.text
    assert pair.refresh_token not in caplog.text


async def test_failing_user_data_is_a_server_error(
    clock: FakeClock, store: BrokenStore
) -> None:
    """A payload function that fails on stored data is the server's fault."""
    calls = 0

    def payload(data: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise LookupError("the user was deleted")
        return {}

    manager = TokenPairManager(SECRET, store=store, clock=clock, payload=payload)
    pair = await manager.generate_token_pair({"sub": "alice"})

    response = await token_endpoint(manager, refresh_form(pair.refresh_token))

    assert_error(response, "server_error", status=500, secrets=(pair.refresh_token,))


# -- the revocation endpoint -------------------------------------------------


async def test_revoking_a_refresh_token_ends_its_family(
    manager: TokenPairManager, pair: Token
) -> None:
    response = await revocation_endpoint(manager, {"token": pair.refresh_token})

    assert response.status == 200
    assert body_of(response) == {}
    assert_no_store(response)
    refused = await token_endpoint(manager, refresh_form(pair.refresh_token))
    assert_error(refused, "invalid_grant")


@pytest.mark.parametrize("hint", ["refresh_token", "access_token", "id_token", ""])
async def test_the_hint_does_not_decide_what_is_revoked(
    manager: TokenPairManager, pair: Token, hint: str
) -> None:
    """RFC 7009: an unknown or wrong hint is ignored."""
    form = {"token": pair.refresh_token, "token_type_hint": hint}

    response = await revocation_endpoint(manager, form)

    assert response.status == 200
    state = await manager.introspect(pair.refresh_token)
    assert state == {"active": False}


async def test_revoking_what_cannot_be_used_is_no_error(
    manager: TokenPairManager, pair: Token, clock: FakeClock
) -> None:
    await manager.revoke(pair.refresh_token)
    clock.advance(ACCESS_TTL)
    tokens = [FORGED, "garbage", pair.refresh_token, pair.access_token, "a.b.c"]

    for token in tokens:
        response = await revocation_endpoint(manager, {"token": token})

        assert response.status == 200, token


async def test_a_live_access_token_is_an_unsupported_token_type(
    manager: TokenPairManager, pair: Token
) -> None:
    response = await revocation_endpoint(
        manager, {"token": pair.access_token, "token_type_hint": "access_token"}
    )

    assert_error(response, "unsupported_token_type", secrets=(pair.access_token,))
    assert_no_store(response)


async def test_an_access_token_of_a_logged_out_subject_needs_no_revoking(
    manager: TokenPairManager, pair: Token
) -> None:
    await manager.revoke_subject("alice")

    response = await revocation_endpoint(manager, {"token": pair.access_token})

    assert response.status == 200


MISSING_OR_REPEATED_TOKEN = [
    {},
    {"token": ""},
    {"token": ["a", "b"]},
    {"token": "a", "token_type_hint": ["refresh_token", "access_token"]},
]


@pytest.mark.parametrize("form", MISSING_OR_REPEATED_TOKEN)
async def test_a_revocation_without_one_token_is_invalid_request(
    manager: TokenPairManager, form: Mapping[str, object]
) -> None:
    response = await revocation_endpoint(manager, form)

    assert_error(response, "invalid_request")
    assert_no_store(response)


async def test_a_store_failure_during_revocation_is_503(
    manager: TokenPairManager, pair: Token, store: BrokenStore
) -> None:
    """RFC 7009 section 2.2.1: the client must assume the token still works."""
    store.broken = True

    for token in (pair.refresh_token, pair.access_token):
        response = await revocation_endpoint(manager, {"token": token})

        assert_error(response, "server_error", status=503, secrets=(token, "hunter2"))
    store.broken = False
    assert (
        await token_endpoint(manager, refresh_form(pair.refresh_token))
    ).status == 200


# -- the introspection endpoint ----------------------------------------------


async def test_live_tokens_are_described(
    manager: TokenPairManager, pair: Token
) -> None:
    access = await introspection_endpoint(manager, {"token": pair.access_token})
    refresh = await introspection_endpoint(
        manager, {"token": pair.refresh_token, "token_type_hint": "refresh_token"}
    )

    assert access.status == refresh.status == 200
    assert_no_store(access)
    assert body_of(access)["active"] is True
    assert body_of(access)["sub"] == "alice"
    assert body_of(access)["token_type"] == "Bearer"
    assert body_of(refresh)["active"] is True
    assert body_of(refresh)["exp"] == pair.refresh_expires_at


async def test_anything_unusable_is_inactive(
    manager: TokenPairManager, pair: Token, clock: FakeClock
) -> None:
    await manager.refresh(pair.refresh_token)
    clock.advance(ACCESS_TTL)
    tokens = [pair.refresh_token, pair.access_token, FORGED, "x", "a.b.c"]

    for token in tokens:
        response = await introspection_endpoint(
            manager, {"token": token, "token_type_hint": "unknown_kind"}
        )

        assert response.status == 200
        assert body_of(response) == {"active": False}


@pytest.mark.parametrize("form", MISSING_OR_REPEATED_TOKEN)
async def test_an_introspection_without_one_token_is_invalid_request(
    manager: TokenPairManager, form: Mapping[str, object]
) -> None:
    response = await introspection_endpoint(manager, form)

    assert_error(response, "invalid_request")


async def test_a_store_failure_is_not_an_inactive_token(
    manager: TokenPairManager, pair: Token, store: BrokenStore
) -> None:
    store.broken = True

    for token in (pair.refresh_token, pair.access_token):
        response = await introspection_endpoint(manager, {"token": token})

        assert_error(response, "server_error", status=500, secrets=(token, "hunter2"))


# -- the JWK Set -------------------------------------------------------------


async def test_hmac_secrets_are_never_published(manager: TokenPairManager) -> None:
    response = jwks_endpoint(manager)

    assert response.status == 200
    assert response.headers["Content-Type"] == "application/jwk-set+json"
    assert response.media_type == "application/jwk-set+json"
    assert body_of(response) == {"keys": []}
    assert SECRET not in response.json_bytes().decode()


async def test_public_keys_are_published_and_verify_tokens() -> None:
    """Every key of a rotation is published, without private parameters."""
    old = ECKey.generate_key("P-256", private=True)
    new = ECKey.generate_key("P-256", private=True)
    manager = TokenPairManager([new, old], algorithm="ES256")
    pair = await manager.generate_token_pair({"sub": "alice"})

    keys = body_of(jwks_endpoint(manager))["keys"]

    assert [key["kid"] for key in keys] == [new.kid, old.kid]
    assert all("d" not in key for key in keys)
    assert all(key["alg"] == "ES256" and key["use"] == "sig" for key in keys)
    published = ECKey.import_key(keys[0])
    own = ECKey.generate_key("P-256", private=True)
    verifier = TokenPairManager([own, published], algorithm="ES256")
    assert verifier.verify_access_token(pair.access_token)["sub"] == "alice"


# -- protecting routes -------------------------------------------------------


async def test_a_valid_bearer_token_yields_its_claims(
    manager: TokenPairManager, pair: Token
) -> None:
    for header in (f"Bearer {pair.access_token}", f"bearer  {pair.access_token} "):
        claims = await authenticate_bearer(manager, header)

        assert claims["sub"] == "alice"


@pytest.mark.parametrize("header", [None, "", "   ", "Basic YWxpY2U6c2VjcmV0"])
async def test_no_bearer_credentials_is_a_bare_challenge(
    manager: TokenPairManager, header: str | None
) -> None:
    """RFC 6750 section 3.1: no error code when no token was offered."""
    with pytest.raises(BearerError) as raised:
        await authenticate_bearer(manager, header, realm="api")

    response = raised.value.response
    assert raised.value.error is None
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert body_of(response) == {}


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer a b", "Bearer a,b"])
async def test_a_malformed_authorization_header_is_invalid_request(
    manager: TokenPairManager, header: str
) -> None:
    with pytest.raises(BearerError) as raised:
        await authenticate_bearer(manager, header)

    response = raised.value.response
    assert raised.value.error == "invalid_request"
    assert response.status == 400
    assert response.headers["WWW-Authenticate"].startswith(
        'Bearer error="invalid_request", error_description="'
    )
    assert body_of(response)["error"] == "invalid_request"


async def test_unusable_access_tokens_are_invalid_token(
    manager: TokenPairManager, pair: Token, clock: FakeClock
) -> None:
    other = TokenPairManager("another-secret-that-is-32-bytes-long!", clock=clock)
    foreign = await other.generate_token_pair({"sub": "alice"})
    cases = {
        foreign.access_token: "does not verify",
        pair.refresh_token: "refresh token",
        pair.access_token: "expired",
    }

    clock.advance(ACCESS_TTL)
    for token, reason in cases.items():
        with pytest.raises(BearerError) as raised:
            await authenticate_bearer(manager, f"Bearer {token}")

        response = raised.value.response
        challenge = response.headers["WWW-Authenticate"]
        assert response.status == 401
        assert challenge.startswith('Bearer error="invalid_token", error_description="')
        assert reason in challenge
        assert token not in challenge
        assert token not in response.json_bytes().decode()
        assert body_of(response)["error"] == "invalid_token"


async def test_tokens_issued_before_logout_everywhere_are_refused(
    manager: TokenPairManager, pair: Token
) -> None:
    await manager.revoke_subject("alice")

    with pytest.raises(BearerError) as raised:
        await authenticate_bearer(manager, f"Bearer {pair.access_token}", realm="api")

    challenge = raised.value.response.headers["WWW-Authenticate"]
    assert raised.value.response.status == 401
    assert challenge.startswith('Bearer realm="api", error="invalid_token", ')
    assert "logged out" in challenge


async def test_a_store_failure_is_not_a_challenge(
    manager: TokenPairManager, pair: Token, store: BrokenStore
) -> None:
    store.broken = True

    with pytest.raises(StoreError):
        await authenticate_bearer(manager, f"Bearer {pair.access_token}")


# -- helpers -----------------------------------------------------------------


async def test_token_response_measures_expiry_on_the_manager_clock(
    manager: TokenPairManager, pair: Token, clock: FakeClock
) -> None:
    clock.advance(60)

    response = token_response(manager, pair)

    assert response.status == 200
    assert_no_store(response)
    assert body_of(response)["expires_in"] == ACCESS_TTL - 60
    assert pair.access_token not in repr(response)
    assert pair.refresh_token not in repr(response)


def test_error_response_keeps_descriptions_within_the_allowed_characters() -> None:
    response = error_response(
        "invalid_client",
        'client "spa" failed\\ \u2013 try again',
        status=401,
        headers={"WWW-Authenticate": 'Basic realm="token"'},
    )

    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="token"'
    assert_no_store(response)
    assert body_of(response) == {
        "error": "invalid_client",
        "error_description": "client ?spa? failed? ? try again",
    }
    assert body_of(error_response("invalid_request")) == {"error": "invalid_request"}


def test_parse_form_keeps_repeats_and_blank_values() -> None:
    parsed = parse_form(b"a=1&b=&a=2+3&c=%2F%3D&d&e=%ff&=x")

    assert parsed == {
        "a": ["1", "2 3"],
        "b": [""],
        "c": ["/="],
        "d": [""],
        "e": ["\ufffd"],
        "": ["x"],
    }
    assert parse_form("grant_type=refresh_token") == {"grant_type": ["refresh_token"]}
    assert parse_form(b"\xff=1") == {"\ufffd": ["1"]}
    assert parse_form(b"") == {}


async def test_a_parsed_body_drives_the_token_endpoint(
    manager: TokenPairManager, pair: Token
) -> None:
    body = f"grant_type=refresh_token&refresh_token={pair.refresh_token}".encode()

    response = await token_endpoint(manager, parse_form(body))

    assert response.status == 200
    twice = body + b"&grant_type=refresh_token"
    assert_error(await token_endpoint(manager, parse_form(twice)), "invalid_request")
