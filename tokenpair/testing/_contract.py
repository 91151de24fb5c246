"""The behaviour every store must show, driven through the manager."""

from __future__ import annotations

import base64
import contextlib
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from .._errors import (
    InvalidAccessTokenError,
    InvalidRefreshTokenError,
    InvalidUserDataError,
    RefreshTokenError,
    RefreshTokenExpiredError,
    RefreshTokenReusedError,
    RefreshTokenRevokedError,
)
from .._manager import TokenPairManager
from .._store import Store
from .._token import Token
from ._clock import FakeClock

__all__ = ["StoreContract"]

StoreFactory = Callable[[], Awaitable[Store]]
ManagerFactory = Callable[..., Awaitable[TokenPairManager]]

SECRET = "contract-suite-secret-of-at-least-32-bytes"
CONCURRENT_REFRESHES = 100


def _family_of(refresh_token: str) -> str:
    return refresh_token.split(".")[1]


def _forge(refresh_token: str) -> str:
    """The same family and shape, another secret."""
    prefix, family, _ = refresh_token.split(".")
    body = base64.urlsafe_b64encode(secrets.token_bytes(48)).decode()
    return f"{prefix}.{family}.{body}"


class StoreContract:
    """Subclass with a ``store_factory`` fixture; see the module docstring."""

    pytestmark = pytest.mark.anyio

    @pytest.fixture(params=["asyncio", "trio"])
    def anyio_backend(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    async def make_manager(
        self, store_factory: StoreFactory, clock: FakeClock
    ) -> ManagerFactory:
        async def make(**options: Any) -> TokenPairManager:
            options.setdefault("clock", clock)
            store = await store_factory()
            return TokenPairManager(options.pop("key", SECRET), store=store, **options)

        return make

    @pytest.fixture
    async def manager(self, make_manager: ManagerFactory) -> TokenPairManager:
        return await make_manager(reuse_grace=10, access_ttl=300, refresh_ttl=3600)

    # -- issuing and rotating ------------------------------------------

    async def test_a_pair_is_issued_and_refreshed(
        self, manager: TokenPairManager
    ) -> None:
        """A refresh returns a new pair for the same subject and data."""
        first = await manager.generate_token_pair({"sub": "alice", "team": "blue"})
        second = await manager.refresh(first.refresh_token)

        assert second.refresh_token != first.refresh_token
        assert _family_of(second.refresh_token) == _family_of(first.refresh_token)
        claims = manager.verify_access_token(second.access_token)
        assert claims["sub"] == "alice"
        assert claims["jti"] != manager.verify_access_token(first.access_token)["jti"]

    async def test_refresh_works_exactly_once_under_concurrency(
        self, make_manager: ManagerFactory
    ) -> None:
        """Many concurrent refreshes of one token: one pair, the rest refused."""
        manager = await make_manager(reuse_grace=0)
        pair = await manager.generate_token_pair({"sub": "alice"})
        successes: list[Token] = []
        failures: list[BaseException] = []

        async def attempt() -> None:
            try:
                successes.append(await manager.refresh(pair.refresh_token))
            except RefreshTokenError as exc:
                failures.append(exc)

        async with anyio.create_task_group() as group:
            for _ in range(CONCURRENT_REFRESHES):
                group.start_soon(attempt)

        assert len(successes) == 1
        assert len(failures) == CONCURRENT_REFRESHES - 1

    async def test_two_managers_on_one_backend_refresh_exactly_once(
        self, make_manager: ManagerFactory
    ) -> None:
        """Stores sharing a backend still let one refresh through."""
        first = await make_manager(reuse_grace=0)
        second = await make_manager(reuse_grace=0)
        pair = await first.generate_token_pair({"sub": "alice"})
        successes: list[Token] = []

        async def attempt(manager: TokenPairManager) -> None:
            with contextlib.suppress(RefreshTokenError):
                successes.append(await manager.refresh(pair.refresh_token))

        async with anyio.create_task_group() as group:
            for index in range(CONCURRENT_REFRESHES):
                group.start_soon(attempt, first if index % 2 else second)

        assert len(successes) == 1

    async def test_user_data_keeps_its_shape_through_refreshes(
        self, make_manager: ManagerFactory
    ) -> None:
        """Claims after a refresh equal those at issue, in every store."""
        manager = await make_manager(
            payload=lambda data: {"roles": data["roles"], "n": data["n"]},
            identity=lambda data: data["user"],
        )
        data = {"user": "ümit", "roles": ("a", "b"), "n": 1.5, "nested": {"x": [1]}}
        pair = await manager.generate_token_pair(data)
        issued = manager.verify_access_token(pair.access_token)
        refreshed = manager.verify_access_token(
            (await manager.refresh(pair.refresh_token)).access_token
        )

        assert issued["sub"] == refreshed["sub"] == "ümit"
        assert issued["roles"] == refreshed["roles"] == ["a", "b"]
        assert issued["n"] == refreshed["n"] == 1.5

    # -- reuse detection and the grace window ---------------------------

    async def test_reuse_after_the_grace_window_revokes_the_family(
        self, manager: TokenPairManager, clock: FakeClock
    ) -> None:
        """An old token presented late is reuse; the latest token dies too."""
        first = await manager.generate_token_pair({"sub": "alice"})
        second = await manager.refresh(first.refresh_token)
        clock.advance(10)

        with pytest.raises(RefreshTokenReusedError) as caught:
            await manager.refresh(first.refresh_token)
        assert caught.value.error == "invalid_grant"
        with pytest.raises(RefreshTokenRevokedError):
            await manager.refresh(second.refresh_token)

    async def test_without_grace_any_second_use_is_reuse(
        self, make_manager: ManagerFactory
    ) -> None:
        """With reuse_grace=0 not even an immediate retry is accepted."""
        manager = await make_manager(reuse_grace=0)
        first = await manager.generate_token_pair({"sub": "alice"})
        second = await manager.refresh(first.refresh_token)

        with pytest.raises(RefreshTokenReusedError):
            await manager.refresh(first.refresh_token)
        with pytest.raises(RefreshTokenRevokedError):
            await manager.refresh(second.refresh_token)

    async def test_without_grace_an_earlier_clock_is_no_retry(
        self, make_manager: ManagerFactory, clock: FakeClock
    ) -> None:
        """A request whose clock reads before the rotation (read before
        another process rotated, or a server running behind) is no retry
        when reuse_grace is 0."""
        manager = await make_manager(reuse_grace=0)
        first = await manager.generate_token_pair({"sub": "alice"})
        clock.advance(5)
        await manager.refresh(first.refresh_token)
        clock.now -= 0.001

        with pytest.raises(RefreshTokenReusedError):
            await manager.refresh(first.refresh_token)

    async def test_a_retry_within_the_grace_window_succeeds(
        self, manager: TokenPairManager, clock: FakeClock
    ) -> None:
        """A lost response can be retried; the family stays alive."""
        first = await manager.generate_token_pair({"sub": "alice"})
        await manager.refresh(first.refresh_token)  # response lost
        clock.advance(9.999)

        retried = await manager.refresh(first.refresh_token)
        latest = await manager.refresh(retried.refresh_token)

        assert manager.verify_access_token(latest.access_token)["sub"] == "alice"

    async def test_a_retry_replaces_the_successor_it_repeats(
        self, manager: TokenPairManager, clock: FakeClock
    ) -> None:
        """Two tokens of one family are never usable at once."""
        first = await manager.generate_token_pair({"sub": "alice"})
        lost = await manager.refresh(first.refresh_token)
        clock.advance(1)
        await manager.refresh(first.refresh_token)

        with pytest.raises(RefreshTokenReusedError):
            await manager.refresh(lost.refresh_token)

    async def test_only_the_token_rotated_last_may_be_retried(
        self, manager: TokenPairManager, clock: FakeClock
    ) -> None:
        """An older token is reuse even inside the grace window."""
        first = await manager.generate_token_pair({"sub": "alice"})
        second = await manager.refresh(first.refresh_token)
        clock.advance(1)
        third = await manager.refresh(second.refresh_token)
        clock.advance(1)

        with pytest.raises(RefreshTokenReusedError):
            await manager.refresh(first.refresh_token)
        with pytest.raises(RefreshTokenRevokedError):
            await manager.refresh(third.refresh_token)

    async def test_the_grace_window_ends_exactly_at_its_length(
        self, manager: TokenPairManager, clock: FakeClock
    ) -> None:
        """At rotated_at + reuse_grace the retry is already reuse."""
        first = await manager.generate_token_pair({"sub": "alice"})
        await manager.refresh(first.refresh_token)
        clock.advance(10)

        with pytest.raises(RefreshTokenReusedError):
            await manager.refresh(first.refresh_token)

    async def test_a_revoked_family_is_not_retryable(
        self, manager: TokenPairManager, clock: FakeClock
    ) -> None:
        """Revocation on purpose outranks the grace window."""
        first = await manager.generate_token_pair({"sub": "alice"})
        second = await manager.refresh(first.refresh_token)
        await manager.revoke(second.refresh_token)
        clock.advance(1)

        with pytest.raises(RefreshTokenRevokedError):
            await manager.refresh(first.refresh_token)
        with pytest.raises(RefreshTokenRevokedError):
            await manager.refresh(second.refresh_token)

    async def test_concurrent_retries_leave_one_usable_token(
        self, manager: TokenPairManager, clock: FakeClock
    ) -> None:
        """Within the grace window, concurrent retries all succeed, and then
        only the successor stored last works."""
        first = await manager.generate_token_pair({"sub": "alice"})
        await manager.refresh(first.refresh_token)
        results: list[Token] = []

        async def retry() -> None:
            results.append(await manager.refresh(first.refresh_token))

        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(retry)
        clock.advance(20)
        outcomes = []
        for result in results:
            try:
                await manager.refresh(result.refresh_token)
                outcomes.append("ok")
            except RefreshTokenError as exc:
                outcomes.append(type(exc).__name__)

        assert outcomes.count("ok") <= 1
        assert "RefreshTokenReusedError" in outcomes

    # -- forged, malformed and foreign tokens ---------------------------

    async def test_a_forged_token_is_invalid_and_changes_nothing(
        self, manager: TokenPairManager
    ) -> None:
        """Right format, wrong secret: refused before the store is touched."""
        pair = await manager.generate_token_pair({"sub": "alice"})
        store = manager.store
        family_id = _family_of(pair.refresh_token)
        before = await store.get_family(family_id)

        with pytest.raises(InvalidRefreshTokenError):
            await manager.refresh(_forge(pair.refresh_token))
        await manager.revoke(_forge(pair.refresh_token))

        assert await store.get_family(family_id) == before
        await manager.refresh(pair.refresh_token)

    async def test_a_token_of_another_key_is_invalid(
        self, make_manager: ManagerFactory
    ) -> None:
        """Tokens minted with another key do not count, not even as reuse."""
        ours = await make_manager()
        theirs = await make_manager(key="another-secret-of-at-least-32-bytes!!")
        pair = await ours.generate_token_pair({"sub": "alice"})

        with pytest.raises(InvalidRefreshTokenError):
            await theirs.refresh(pair.refresh_token)
        await ours.refresh(pair.refresh_token)

    @pytest.mark.parametrize(
        "bad",
        [
            None,
            "",
            "x" * 1_000_000,
            "tpr1.ünïcödé.token",
            "tpr1.",
            "tpr1.abcdefgh.",
            42,
        ],
    )
    async def test_malformed_refresh_tokens_are_refused(
        self, manager: TokenPairManager, bad: Any
    ) -> None:
        """Bad input gets the library's own error."""
        with pytest.raises(InvalidRefreshTokenError):
            await manager.refresh(bad)

    async def test_truncated_and_swapped_tokens_are_refused(
        self, manager: TokenPairManager
    ) -> None:
        """A token cut short, or an access token given as a refresh token
        (and the other way round), is refused."""
        pair = await manager.generate_token_pair({"sub": "alice"})

        with pytest.raises(InvalidRefreshTokenError):
            await manager.refresh(pair.refresh_token[:-1])
        with pytest.raises(InvalidRefreshTokenError):
            await manager.refresh(pair.access_token)
        with pytest.raises(InvalidAccessTokenError):
            manager.verify_access_token(pair.refresh_token)
        await manager.refresh(pair.refresh_token)

    # -- what is stored -------------------------------------------------

    async def test_the_store_keeps_no_usable_secret(
        self, manager: TokenPairManager
    ) -> None:
        """Only digests are stored; no part of a token's secret."""
        first = await manager.generate_token_pair({"sub": "alice"})
        second = await manager.refresh(first.refresh_token)
        state = await manager.store.get_family(_family_of(second.refresh_token))

        assert state is not None
        bodies = {
            t.rsplit(".", 1)[1] for t in (first.refresh_token, second.refresh_token)
        }
        stored = f"{state.current}|{state.previous}|{state.user_data}"
        for body in bodies:
            assert body not in stored
            assert body[:32] not in stored
        assert state.generation == 1

    # -- expiry by the injected clock -----------------------------------

    async def test_a_refresh_token_expires_after_its_idle_lifetime(
        self, manager: TokenPairManager, clock: FakeClock
    ) -> None:
        """refresh_ttl counts from the last rotation, by the manager's clock."""
        pair = await manager.generate_token_pair({"sub": "alice"})
        clock.advance(3599)
        pair = await manager.refresh(pair.refresh_token)
        assert pair.refresh_expires_at == int(clock.now + 3600)
        clock.advance(3600)

        with pytest.raises(RefreshTokenExpiredError):
            await manager.refresh(pair.refresh_token)

    async def test_family_ttl_caps_the_whole_chain(
        self, make_manager: ManagerFactory, clock: FakeClock
    ) -> None:
        """Refreshing cannot extend a login past family_ttl."""
        manager = await make_manager(refresh_ttl=100, family_ttl=250)
        pair = await manager.generate_token_pair({"sub": "alice"})
        for _ in range(2):
            clock.advance(90)
            pair = await manager.refresh(pair.refresh_token)
        clock.advance(60)
        last = await manager.refresh(pair.refresh_token)
        assert last.refresh_expires_at == int(1_800_000_000.25 + 250)
        clock.advance(10)

        with pytest.raises(RefreshTokenExpiredError):
            await manager.refresh(last.refresh_token)

    async def test_expired_state_is_cleaned_up(
        self, manager: TokenPairManager, clock: FakeClock
    ) -> None:
        """After expiry, state is gone (purged or expired natively) or at
        least reported as expired; it never comes back to life."""
        pair = await manager.generate_token_pair({"sub": "alice"})
        family_id = _family_of(pair.refresh_token)
        clock.advance(3601)
        await manager.purge_expired()

        state = await manager.store.get_family(family_id)
        assert state is None or state.expires_at <= clock.now
        with pytest.raises(RefreshTokenError):
            await manager.refresh(pair.refresh_token)

    # -- revocation -----------------------------------------------------

    async def test_revoke_ends_the_family_and_is_idempotent(
        self, manager: TokenPairManager
    ) -> None:
        """Revoking twice, or revoking junk, is no error (RFC 7009)."""
        pair = await manager.generate_token_pair({"sub": "alice"})
        await manager.revoke(pair.refresh_token)
        await manager.revoke(pair.refresh_token)
        await manager.revoke("not a token at all")

        with pytest.raises(RefreshTokenRevokedError):
            await manager.refresh(pair.refresh_token)

    async def test_revoke_subject_logs_out_everywhere(
        self, manager: TokenPairManager, clock: FakeClock
    ) -> None:
        """All families of the subject end; other subjects keep theirs."""
        phone = await manager.generate_token_pair({"sub": "alice"})
        laptop = await manager.generate_token_pair({"sub": "alice"})
        other = await manager.generate_token_pair({"sub": "bob"})
        laptop = await manager.refresh(laptop.refresh_token)

        assert await manager.revoke_subject("alice") == 2
        for pair in (phone, laptop):
            with pytest.raises(RefreshTokenRevokedError):
                await manager.refresh(pair.refresh_token)
        await manager.refresh(other.refresh_token)
        assert await manager.revoke_subject("alice") == 0

    async def test_logout_everywhere_rejects_earlier_access_tokens_at_once(
        self, manager: TokenPairManager, clock: FakeClock
    ) -> None:
        """Within one second: tokens issued before are refused, after are
        accepted."""
        before = await manager.generate_token_pair({"sub": "alice"})
        await manager.authenticate(before.access_token)
        clock.advance(0.1)
        await manager.revoke_subject("alice")
        clock.advance(0.1)
        after = await manager.generate_token_pair({"sub": "alice"})

        assert before.created_at == after.created_at
        with pytest.raises(InvalidAccessTokenError):
            await manager.authenticate(before.access_token)
        assert (await manager.authenticate(after.access_token))["sub"] == "alice"
        manager.verify_access_token(before.access_token)

    async def test_a_login_racing_logout_everywhere_is_revoked(
        self, manager: TokenPairManager, clock: FakeClock
    ) -> None:
        """A family stamped at or before the subject's cut-off (its login began
        before the logout) arrives revoked."""
        racing = await manager.store.revoke_subject("alice", clock.now, clock.now + 60)
        assert racing == 0
        pair = await manager.generate_token_pair({"sub": "alice"})

        with pytest.raises(RefreshTokenRevokedError):
            await manager.refresh(pair.refresh_token)
        clock.advance(0.001)
        later = await manager.generate_token_pair({"sub": "alice"})
        await manager.refresh(later.refresh_token)

    async def test_generate_with_revocation_replaces_the_old_pair(
        self, manager: TokenPairManager
    ) -> None:
        """The old token is revoked and a new family begins."""
        old = await manager.generate_token_pair({"sub": "alice"})
        new = await manager.generate_token_pair_with_revocation(
            {"sub": "alice"}, old.refresh_token
        )

        assert _family_of(new.refresh_token) != _family_of(old.refresh_token)
        with pytest.raises(RefreshTokenRevokedError):
            await manager.refresh(old.refresh_token)
        await manager.refresh(new.refresh_token)

    async def test_generate_with_revocation_issues_nothing_for_a_dead_token(
        self, manager: TokenPairManager
    ) -> None:
        """An invalid old token raises, and no new family stays usable."""
        old = await manager.generate_token_pair({"sub": "alice"})
        await manager.revoke(old.refresh_token)

        with pytest.raises(RefreshTokenRevokedError):
            await manager.generate_token_pair_with_revocation(
                {"sub": "alice"}, old.refresh_token
            )
        with pytest.raises(InvalidRefreshTokenError):
            await manager.generate_token_pair_with_revocation(
                {"sub": "alice"}, _forge(old.refresh_token)
            )
        assert await manager.revoke_subject("alice") == 0

    # -- reloading the user on refresh ----------------------------------

    async def test_reload_refreshes_claims_and_can_refuse(
        self, make_manager: ManagerFactory
    ) -> None:
        """Fresh data goes into the new claims; a refusal rotates nothing."""
        users = {"alice": {"sub": "alice", "role": "reader"}}
        seen: list[tuple[str, Any]] = []

        async def reload(subject: str, data: Any) -> Any:
            seen.append((subject, data))
            if subject not in users:
                raise PermissionError("disabled")
            return users[subject]

        manager = await make_manager(
            reload=reload, payload=lambda data: {"role": data["role"]}
        )
        pair = await manager.generate_token_pair(users["alice"])
        users["alice"] = {"sub": "alice", "role": "admin"}
        pair = await manager.refresh(pair.refresh_token)
        assert manager.verify_access_token(pair.access_token)["role"] == "admin"
        assert seen == [("alice", {"sub": "alice", "role": "reader"})]

        del users["alice"]
        with pytest.raises(RefreshTokenError, match="PermissionError") as caught:
            await manager.refresh(pair.refresh_token)
        assert isinstance(caught.value.__cause__, PermissionError)
        users["alice"] = {"sub": "alice", "role": "reader"}
        await manager.refresh(pair.refresh_token)

    async def test_bad_user_data_writes_nothing(
        self, manager: TokenPairManager
    ) -> None:
        """Unserialisable user data is refused, naming the key."""
        with pytest.raises(InvalidUserDataError, match="when"):
            await manager.generate_token_pair({"sub": "alice", "when": object()})
        assert await manager.revoke_subject("alice") == 0
