"""Access tokens: format, claims, keys and the boundaries of time checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from tokenpair import (
    AccessTokenExpiredError,
    ConfigurationError,
    InvalidAccessTokenError,
    TokenPairManager,
)
from tokenpair.testing import FakeClock

SECRET = "a-secret-for-tests-that-is-long-enough"
pytestmark = pytest.mark.anyio


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")

    def decode(part: str) -> dict[str, Any]:
        return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))

    return decode(header), decode(payload)


def _resign(manager: TokenPairManager, token: str, **changes: Any) -> str:
    """The same token with changed claims, signed with the manager's key."""
    header, claims = _parts(token)
    claims.update(changes)
    return jwt.encode(header, claims, OctKey.import_key(SECRET), algorithms=["HS256"])


async def test_access_tokens_follow_rfc_9068() -> None:
    """typ at+jwt, a kid, and the registered claims the profile asks for."""
    clock = FakeClock()
    manager = TokenPairManager(
        SECRET, clock=clock, issuer="https://id.example", audience="api"
    )
    pair = await manager.generate_token_pair({"sub": "alice"})
    header, claims = _parts(pair.access_token)

    assert header["typ"] == "at+jwt"
    assert header["alg"] == "HS256"
    assert isinstance(header["kid"], str)
    assert claims["iss"] == "https://id.example"
    assert claims["aud"] == "api"
    assert claims["sub"] == "alice"
    assert claims["iat"] == pair.created_at == int(clock.now)
    assert claims["exp"] == pair.expires_at == int(clock.now + 900)
    assert isinstance(claims["jti"], str)


async def test_payload_adds_claims_but_not_registered_ones() -> None:
    """payload may add claims; overriding iss, sub, exp and the rest is refused."""
    manager = TokenPairManager(SECRET, payload=lambda data: {"role": data["role"]})
    pair = await manager.generate_token_pair({"id": 7, "role": "admin"})
    claims = manager.verify_access_token(pair.access_token)
    assert claims["role"] == "admin"
    assert claims["sub"] == "7"

    from tokenpair import InvalidUserDataError

    for name in ("sub", "exp", "iat", "jti", "iss", "aud", "nbf"):
        sneaky = TokenPairManager(SECRET, payload=lambda _, name=name: {name: "x"})
        with pytest.raises(InvalidUserDataError, match=name):
            await sneaky.generate_token_pair({"sub": "alice"})


@pytest.mark.parametrize(
    ("offset", "leeway", "outcome"),
    [
        # seconds after exp at which the token is checked
        (-0.001, 0, "ok"),
        (0, 0, "expired"),
        (4.999, 5, "ok"),
        (5, 5, "expired"),
    ],
)
async def test_exp_boundary(offset: float, leeway: float, outcome: str) -> None:
    """A token is expired from exp on, or from exp + leeway."""
    clock = FakeClock()
    manager = TokenPairManager(SECRET, clock=clock, leeway=leeway, access_ttl=60)
    pair = await manager.generate_token_pair({"sub": "alice"})
    clock.now = pair.expires_at + offset

    if outcome == "ok":
        manager.verify_access_token(pair.access_token)
    else:
        with pytest.raises(AccessTokenExpiredError) as caught:
            manager.verify_access_token(pair.access_token)
        assert caught.value.error == "invalid_token"


@pytest.mark.parametrize(
    ("nbf_offset", "leeway", "valid"),
    [(0, 0, True), (0.5, 0, False), (3, 3, True), (3.5, 3, False)],
)
async def test_nbf_boundary(nbf_offset: float, leeway: float, valid: bool) -> None:
    """nbf is honoured with the leeway, if a token carries one."""
    clock = FakeClock()
    manager = TokenPairManager(SECRET, clock=clock, leeway=leeway)
    pair = await manager.generate_token_pair({"sub": "alice"})
    token = _resign(manager, pair.access_token, nbf=clock.now + nbf_offset)

    if valid:
        manager.verify_access_token(token)
    else:
        with pytest.raises(InvalidAccessTokenError, match="not valid yet"):
            manager.verify_access_token(token)


async def test_tokens_from_the_future_are_refused() -> None:
    clock = FakeClock()
    manager = TokenPairManager(SECRET, clock=clock)
    pair = await manager.generate_token_pair({"sub": "alice"})
    token = _resign(manager, pair.access_token, iat=clock.now + 10)

    with pytest.raises(InvalidAccessTokenError, match="future"):
        manager.verify_access_token(token)


async def test_issuer_and_audience_are_checked() -> None:
    ours = TokenPairManager(SECRET, issuer="https://a", audience=["api", "web"])
    other_issuer = TokenPairManager(SECRET, issuer="https://b", audience="api")
    other_audience = TokenPairManager(SECRET, issuer="https://a", audience="admin")
    pair = await ours.generate_token_pair({"sub": "alice"})

    assert ours.verify_access_token(pair.access_token)["aud"] == ["api", "web"]
    with pytest.raises(InvalidAccessTokenError, match="issuer"):
        other_issuer.verify_access_token(pair.access_token)
    with pytest.raises(InvalidAccessTokenError, match="audience"):
        other_audience.verify_access_token(pair.access_token)


async def test_only_access_tokens_are_accepted() -> None:
    """A JWT of another type, even signed with our key, is not an access token."""
    manager = TokenPairManager(SECRET)
    pair = await manager.generate_token_pair({"sub": "alice"})
    header, claims = _parts(pair.access_token)
    for typ in ("JWT", None):
        other = {**header, "typ": typ} if typ else {"alg": "HS256"}
        token = jwt.encode(
            other, claims, OctKey.import_key(SECRET), ["HS256"], default_type=None
        )
        with pytest.raises(InvalidAccessTokenError, match="typ"):
            manager.verify_access_token(token)


async def test_unsigned_and_confused_algorithms_are_refused() -> None:
    """alg none, and an HMAC token made with the public RSA key as secret
    (the classic confusion attack), are refused by an RS256 manager."""
    private = RSAKey.generate_key(2048)
    manager = TokenPairManager(private, algorithm="RS256")
    pair = await manager.generate_token_pair({"sub": "alice"})
    header, claims = _parts(pair.access_token)

    def segment(data: dict[str, Any]) -> str:
        raw = json.dumps(data).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    unsigned = f"{segment({**header, 'alg': 'none'})}.{segment(claims)}."
    with pytest.raises(InvalidAccessTokenError):
        manager.verify_access_token(unsigned)

    public_pem = private.as_pem(private=False)
    signing_input = f"{segment({**header, 'alg': 'HS256'})}.{segment(claims)}"
    mac = hmac.digest(public_pem, signing_input.encode(), hashlib.sha256)
    signature = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    confused = f"{signing_input}.{signature}"
    with pytest.raises(InvalidAccessTokenError):
        manager.verify_access_token(confused)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "",
        42,
        "x" * 1_000_000,
        "ünïcödé.ünïcödé.ünïcödé",
        "a.b.c",
        "only-one-part",
        "eyJhbGciOiJIUzI1NiJ9.e30",
    ],
)
async def test_malformed_access_tokens_get_our_error(bad: Any) -> None:
    manager = TokenPairManager(SECRET)
    with pytest.raises(InvalidAccessTokenError):
        manager.verify_access_token(bad)


async def test_a_truncated_access_token_is_refused() -> None:
    manager = TokenPairManager(SECRET)
    pair = await manager.generate_token_pair({"sub": "alice"})
    for cut in (1, 10, len(pair.access_token) // 2):
        with pytest.raises(InvalidAccessTokenError):
            manager.verify_access_token(pair.access_token[:-cut])


@pytest.mark.parametrize(
    ("key", "algorithm"),
    [
        (RSAKey.generate_key(2048), "RS256"),
        (RSAKey.generate_key(2048), "PS256"),
        (ECKey.generate_key("P-256"), "ES256"),
        (ECKey.generate_key("P-384"), "ES384"),
        (OKPKey.generate_key("Ed25519"), "Ed25519"),
    ],
)
async def test_asymmetric_keys_sign_and_publish(key: Any, algorithm: str) -> None:
    """Private keys as joserfc keys, PEM or JWK work; jwks() publishes only
    the public half."""
    for form in (key, key.as_pem(private=True), key.as_dict(private=True)):
        manager = TokenPairManager(form, algorithm=algorithm)
        pair = await manager.generate_token_pair({"sub": "alice"})
        assert manager.verify_access_token(pair.access_token)["sub"] == "alice"
        await manager.refresh(pair.refresh_token)
        published = manager.jwks()["keys"]
        assert len(published) == 1
        assert "d" not in published[0]
        assert published[0]["alg"] == algorithm


async def test_hmac_keys_are_never_published() -> None:
    assert TokenPairManager(SECRET).jwks() == {"keys": []}


async def test_key_rotation_keeps_old_tokens_valid() -> None:
    """With [new, old], new tokens are signed with new, old ones still verify,
    and old refresh tokens still rotate."""
    old_key = ECKey.generate_key("P-256")
    new_key = ECKey.generate_key("P-256")
    before = TokenPairManager(old_key, algorithm="ES256")
    pair = await before.generate_token_pair({"sub": "alice"})
    after = TokenPairManager([new_key, old_key], algorithm="ES256", store=before.store)

    assert after.verify_access_token(pair.access_token)["sub"] == "alice"
    rotated = await after.refresh(pair.refresh_token)
    assert _parts(rotated.access_token)[0]["kid"] == new_key.thumbprint()
    assert len(after.jwks()["keys"]) == 2
    with pytest.raises(InvalidAccessTokenError):
        before.verify_access_token(rotated.access_token)


def _small_rsa_pem() -> bytes:
    small = rsa.generate_private_key(65537, 1024)  # noqa: S505 - must be refused
    return small.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize(
    ("key", "algorithm", "message"),
    [
        ("short", "HS256", "at least 32 bytes"),
        ("x" * 40, "HS512", "at least 64 bytes"),
        ("x" * 40, "RS256", "plain secret"),
        ("x" * 40, "none", "not supported"),
        (RSAKey.generate_key(2048).as_pem(private=True), "HS256", "PEM"),
        (ECKey.generate_key("P-384"), "ES256", "curve"),
        (_small_rsa_pem(), "RS256", "2048"),
        (RSAKey.generate_key(2048).as_dict(private=False), "RS256", "private"),
        ([], "HS256", "at least one key"),
        (3.14, "HS256", "not float"),
        ({"kty": "EC"}, "RS256", "kty"),
    ],
)
def test_bad_keys_are_configuration_errors(
    key: Any, algorithm: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        TokenPairManager(key, algorithm=algorithm)
    assert "BEGIN" not in str(caught.value)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("access_ttl", 0),
        ("access_ttl", -1),
        ("refresh_ttl", float("inf")),
        ("refresh_ttl", "1h"),
        ("family_ttl", 0),
        ("reuse_grace", -0.5),
        ("leeway", float("nan")),
        ("issuer", ""),
        ("audience", []),
        ("audience", [""]),
        ("clock", 5),
        ("payload", "claims"),
        ("store", "memory://"),
    ],
)
def test_bad_settings_are_configuration_errors(option: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=option.split("_")[0]):
        TokenPairManager(SECRET, **{option: value})


async def test_signing_matches_joserfc_byte_for_byte() -> None:
    """The manager encodes its fixed header once, but what it signs is what
    joserfc's own jwt.encode would make of the same header and claims."""
    manager = TokenPairManager(SECRET, issuer="https://id.example")
    pair = await manager.generate_token_pair({"sub": "ünïcode"})
    header, claims = _parts(pair.access_token)
    expected = jwt.encode(
        header, claims, OctKey.import_key(SECRET), ["HS256"], default_type=None
    )
    assert pair.access_token == expected
