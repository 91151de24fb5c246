"""The Token value, open_store, the public names, logging and the demo."""

from __future__ import annotations

import builtins
import logging
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest

import tokenpair
from tokenpair import (
    ConfigurationError,
    InvalidRefreshTokenError,
    InvalidUserDataError,
    MemoryStore,
    RefreshTokenReusedError,
    StoreError,
    Token,
    TokenPairError,
    TokenPairManager,
    open_store,
)
from tokenpair.testing import FakeClock

SECRET = "a-secret-for-tests-that-is-long-enough"
pytestmark = pytest.mark.anyio


def test_the_public_names_are_the_documented_ones() -> None:
    promised = {
        "TokenPairManager",
        "Token",
        "open_store",
        "Store",
        "MemoryStore",
        "TokenPairError",
        "InvalidAccessTokenError",
        "AccessTokenExpiredError",
        "RefreshTokenError",
        "InvalidRefreshTokenError",
        "RefreshTokenExpiredError",
        "RefreshTokenRevokedError",
        "RefreshTokenReusedError",
        "StoreError",
        "ConfigurationError",
    }
    assert promised <= set(tokenpair.__all__)
    for name in tokenpair.__all__:
        assert getattr(tokenpair, name) is not None


def test_every_error_carries_its_oauth_code() -> None:
    codes = {
        "InvalidAccessTokenError": "invalid_token",
        "AccessTokenExpiredError": "invalid_token",
        "RefreshTokenError": "invalid_grant",
        "InvalidRefreshTokenError": "invalid_grant",
        "RefreshTokenExpiredError": "invalid_grant",
        "RefreshTokenRevokedError": "invalid_grant",
        "RefreshTokenReusedError": "invalid_grant",
        "InvalidUserDataError": "invalid_request",
        "StoreError": "server_error",
        "ConfigurationError": "server_error",
    }
    for name, code in codes.items():
        error = getattr(tokenpair, name)("described")
        assert isinstance(error, TokenPairError)
        assert error.error == code
        assert error.description == "described"


def test_token_counts_down_and_serialises_as_rfc_6749() -> None:
    token = Token(
        access_token="a.b.c",
        refresh_token="tpr1.x.y",
        expires_at=1_000,
        created_at=100,
        refresh_expires_at=5_000,
    )
    assert token.expires_in(now=400.5) == 600
    assert token.expires_in(now=2_000) == 0
    assert token.to_dict(now=400) == {
        "access_token": "a.b.c",
        "token_type": "Bearer",
        "expires_in": 600,
        "refresh_token": "tpr1.x.y",
        "expires_at": 1_000,
        "created_at": 100,
    }
    assert "a.b.c" not in repr(token)
    assert "tpr1" not in repr(token)
    with pytest.raises(AttributeError):
        token.access_token = "changed"  # type: ignore[misc]


async def test_ttls_accept_timedelta_and_seconds() -> None:
    clock = FakeClock()
    manager = TokenPairManager(
        SECRET, clock=clock, access_ttl=timedelta(minutes=2), refresh_ttl=30
    )
    pair = await manager.generate_token_pair({"sub": "alice"})
    assert pair.expires_at == int(clock.now + 120)
    assert pair.refresh_expires_at == int(clock.now + 30)


async def test_default_store_is_memory_and_is_closed_with_the_manager() -> None:
    async with TokenPairManager(SECRET) as manager:
        assert isinstance(manager.store, MemoryStore)
        await manager.generate_token_pair({"sub": "alice"})


def test_open_store_knows_memory_and_names_unknown_schemes() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    with pytest.raises(ConfigurationError, match="'ftp'"):
        open_store("ftp://example")
    with pytest.raises(ConfigurationError, match="looks like"):
        open_store("tokens.db")


def test_open_store_names_the_extra_when_the_driver_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_import = builtins.__import__

    def without_adapters(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith(("tokenpair_", "redis", "pymongo", "aiosqlite")):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    for module in [m for m in sys.modules if m.startswith("tokenpair_")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setattr(builtins, "__import__", without_adapters)
    for url, extra in [
        ("sqlite:///x.db", "sqlite"),
        ("redis://localhost", "redis"),
        ("redis+cluster://localhost:7000", "redis"),
        ("mongodb://localhost/db", "mongodb"),
    ]:
        with pytest.raises(ConfigurationError, match=rf"tokenpair\[{extra}\]"):
            open_store(url)


async def test_user_data_errors_name_the_offending_key() -> None:
    manager = TokenPairManager(SECRET)
    cases: list[tuple[Any, str]] = [
        (None, "no user data"),
        ({"name": "no subject"}, "'sub' or 'id'"),
        ({"sub": ""}, "empty"),
        ({"sub": None}, "string or an integer"),
        ({"sub": "a", "profile": {"tags": [1, {1, 2}]}}, r"profile\.tags\[1\]"),
        ({"sub": "a", "score": float("nan")}, "score"),
        ({"sub": "a", "blob": "x" * 100_000}, "at most"),
        ({"sub": "a", object(): 1}, "not a string"),
    ]
    for data, message in cases:
        with pytest.raises(InvalidUserDataError, match=message):
            await manager.generate_token_pair(data)
    assert await manager.revoke_subject("a") == 0


async def test_failing_callables_become_user_data_errors() -> None:
    def broken(data: Any) -> Any:
        raise KeyError("role")

    manager = TokenPairManager(SECRET, payload=broken)
    with pytest.raises(InvalidUserDataError, match="payload failed: KeyError"):
        await manager.generate_token_pair({"sub": "alice"})
    not_a_mapping = TokenPairManager(SECRET, payload=lambda data: ["role"])
    with pytest.raises(InvalidUserDataError, match="mapping"):
        await not_a_mapping.generate_token_pair({"sub": "alice"})


async def test_reuse_is_logged_as_a_warning_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = TokenPairManager(SECRET, reuse_grace=0)
    caplog.set_level(logging.DEBUG, logger="tokenpair")
    first = await manager.generate_token_pair({"sub": "alice"})
    second = await manager.refresh(first.refresh_token)
    with pytest.raises(RefreshTokenReusedError):
        await manager.refresh(first.refresh_token)

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "reuse" in warnings[0].getMessage()
    assert all(r.levelno <= logging.INFO for r in caplog.records if r not in warnings)
    text = "\n".join(r.getMessage() for r in caplog.records)
    for token in (first, second):
        assert token.refresh_token.split(".")[1] not in text
        assert token.refresh_token.split(".")[2] not in text
        assert token.access_token not in text
    assert SECRET not in repr(manager)


async def test_error_messages_never_quote_the_token() -> None:
    manager = TokenPairManager(SECRET)
    pair = await manager.generate_token_pair({"sub": "alice"})
    bad = pair.refresh_token[:-2] + "zz"
    with pytest.raises(InvalidRefreshTokenError) as caught:
        await manager.refresh(bad)
    assert bad[10:] not in str(caught.value)
    assert bad[10:] not in repr(caught.value)


class _FlakyStore(MemoryStore):
    """A memory store whose writes of new families fail on demand: a fault a
    real backend cannot be made to show at a chosen moment."""

    failing = False

    async def create_family(self, family: Any) -> None:
        if self.failing:
            raise StoreError("the backend is down")
        await super().create_family(family)


async def test_generate_with_revocation_keeps_the_old_token_if_the_store_fails() -> (
    None
):
    """A failed write of the new family leaves the old token usable."""
    store = _FlakyStore()
    manager = TokenPairManager(SECRET, store=store)
    old = await manager.generate_token_pair({"sub": "alice"})
    store.failing = True

    with pytest.raises(StoreError):
        await manager.generate_token_pair_with_revocation(
            {"sub": "alice"}, old.refresh_token
        )
    await manager.refresh(old.refresh_token)


def test_the_demo_tells_the_whole_story(tmp_path: Any) -> None:
    """The README's demo runs on a fresh folder with the default store."""
    result = subprocess.run(
        [sys.executable, "-m", "tokenpair", "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in (
        "access token:",
        "refresh token: tpr1.",
        "expires in:    900 s",
        "RefreshTokenReusedError",
        "RefreshTokenRevokedError",
        "families revoked: 2",
        "logged out",
    ):
        assert expected in out
    assert (tmp_path / "tokenpair-demo.db").exists()


def test_the_demo_fails_cleanly_on_a_bad_store(tmp_path: Any) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tokenpair", "demo", "--store", "nope://"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: no store for the scheme 'nope'")
    assert "Traceback" not in result.stderr


async def test_text_that_is_not_unicode_is_refused_before_anything_is_written() -> None:
    """Lone surrogates, which json.loads lets through from request bodies."""
    manager = TokenPairManager(SECRET)
    with pytest.raises(InvalidUserDataError, match="Unicode"):
        await manager.generate_token_pair({"sub": "\ud800"})
    with pytest.raises(InvalidUserDataError, match="surrogate"):
        await manager.generate_token_pair({"sub": "a", "note": "\udcff"})
    with pytest.raises(InvalidUserDataError, match="Unicode"):
        await manager.revoke_subject("\ud800")
    assert await manager.revoke_subject("a") == 0


async def test_odd_user_data_gets_a_reason() -> None:
    manager = TokenPairManager(SECRET, identity=lambda data: data["id"])
    looped: dict[str, Any] = {"id": "a"}
    looped["self"] = looped
    with pytest.raises(InvalidUserDataError, match="refers to itself"):
        await manager.generate_token_pair(looped)
    with pytest.raises(InvalidUserDataError, match="integer too large"):
        await manager.generate_token_pair({"id": 10**5000})
    with pytest.raises(InvalidUserDataError, match=r"at big: an integer too large"):
        await manager.generate_token_pair({"id": "a", "big": 10**5000})


async def test_claims_that_would_not_fit_a_header_are_refused() -> None:
    """Every token the manager issues, it also accepts."""
    manager = TokenPairManager(SECRET, payload=lambda data: {"blob": data["blob"]})
    with pytest.raises(InvalidUserDataError, match="request headers"):
        await manager.generate_token_pair({"sub": "a", "blob": "v" * 20_000})
    pair = await manager.generate_token_pair({"sub": "a", "blob": "v" * 8_000})
    manager.verify_access_token(pair.access_token)


async def test_reload_must_be_async() -> None:
    manager = TokenPairManager(SECRET, reload=lambda subject, data: data)  # type: ignore[arg-type, return-value]
    pair = await manager.generate_token_pair({"sub": "a"})
    with pytest.raises(ConfigurationError, match="async"):
        await manager.refresh(pair.refresh_token)
    await TokenPairManager(SECRET, store=manager.store).refresh(pair.refresh_token)


async def test_a_failure_after_rotation_hands_the_family_back() -> None:
    """If the new access token cannot be made after the store rotated, the
    presented refresh token keeps working, even without a grace window."""
    calls = 0

    def flaky_payload(data: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("directory unavailable")
        return {}

    manager = TokenPairManager(SECRET, payload=flaky_payload, reuse_grace=0)
    pair = await manager.generate_token_pair({"sub": "a"})
    with pytest.raises(InvalidUserDataError, match="payload failed"):
        await manager.refresh(pair.refresh_token)

    again = await manager.refresh(pair.refresh_token)
    await manager.refresh(again.refresh_token)


async def test_claims_cannot_forge_introspection_fields() -> None:
    manager = TokenPairManager(
        SECRET, payload=lambda data: {"active": False, "token_type": "x"}
    )
    pair = await manager.generate_token_pair({"sub": "a"})
    described = await manager.introspect(pair.access_token)
    assert described["active"] is True
    assert described["token_type"] == "Bearer"


async def test_a_jwt_given_as_refresh_token_is_named_as_such() -> None:
    manager = TokenPairManager(SECRET)
    pair = await manager.generate_token_pair({"sub": "a"})
    with pytest.raises(InvalidRefreshTokenError, match="JWT was given"):
        await manager.refresh(pair.access_token)


def test_purge_refuses_what_it_cannot_purge(tmp_path: Any) -> None:
    """A mistyped SQLite path is an error, not a new empty database."""
    for url, message in [
        ("sqlite:///missing.db", "no database file"),
        ("memory://", "nothing to purge"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "tokenpair", "purge", "--store", url],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1
        assert message in result.stderr
    assert not (tmp_path / "missing.db").exists()


def test_purge_removes_expired_state_from_a_sqlite_file(tmp_path: Any) -> None:
    subprocess.run(
        [sys.executable, "-m", "tokenpair", "demo"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=60,
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tokenpair",
            "purge",
            "--store",
            "sqlite:///tokenpair-demo.db",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("removed 0 expired records")


def test_the_demo_never_prints_a_store_password(tmp_path: Any) -> None:
    for url in (
        "redis://default:S3CRETPW@127.0.0.1:1/0",  # reached, then refused
        "redis://default:S3CRET/PW@127.0.0.1:1/0",  # not even a valid URL
        "redis://127.0.0.1:1/0?password=S3CRETPW",  # as an option
    ):
        result = subprocess.run(
            [sys.executable, "-m", "tokenpair", "demo", "--store", url],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1
        assert "S3CRET" not in result.stdout + result.stderr
        assert "PW" not in result.stdout + result.stderr
        if url.startswith("redis://default:S3CRETPW@"):
            assert "Store: redis://***@127.0.0.1:1/0" in result.stdout
