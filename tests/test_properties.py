"""Properties that hold for any input, checked with generated data."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenpair import (
    InvalidAccessTokenError,
    InvalidRefreshTokenError,
    InvalidUserDataError,
    RefreshTokenError,
    RefreshTokenReusedError,
    TokenPairManager,
)
from tokenpair.testing import FakeClock

SECRET = "a-secret-for-tests-that-is-long-enough"
MANAGER = TokenPairManager(SECRET)

token_like = st.one_of(
    st.text(),
    st.text(alphabet="tpr1.-_ABCDEFabcdef0123456789eyJ", max_size=200),
    st.builds(
        lambda family, body: f"tpr1.{family}.{body}",
        st.text(alphabet="abcdefghABCDEFGH0123456789-_", min_size=0, max_size=70),
        st.text(alphabet="abcdefghABCDEFGH0123456789-_=", min_size=60, max_size=68),
    ),
)


@given(token_like)
def test_any_text_is_a_refresh_error(text: str) -> None:
    """Made-up text is refused with the library's own error, always."""

    async def attempt() -> None:
        with pytest.raises(InvalidRefreshTokenError):
            await MANAGER.refresh(text)

    anyio.run(attempt)


@given(token_like)
def test_any_text_is_an_access_error(text: str) -> None:
    try:
        MANAGER.verify_access_token(text)
    except InvalidAccessTokenError:
        return
    raise AssertionError("random text verified as an access token")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_user_data_is_kept_or_refused_never_crashes(data: object) -> None:
    """Any JSON-like value is either issued and refreshed with the same claims,
    or refused with InvalidUserDataError."""
    manager = TokenPairManager(
        SECRET, identity=lambda _: "subject", payload=lambda value: {"data": value}
    )

    async def attempt() -> None:
        try:
            pair = await manager.generate_token_pair(data)
        except InvalidUserDataError:
            return
        issued = manager.verify_access_token(pair.access_token)["data"]
        refreshed = await manager.refresh(pair.refresh_token)
        assert manager.verify_access_token(refreshed.access_token)["data"] == issued

    anyio.run(attempt)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=12), st.sampled_from([0.5, 3, 6])),
        min_size=1,
        max_size=12,
    )
)
def test_rotation_follows_the_model(steps: list[tuple[int, float]]) -> None:
    """Whatever tokens a client presents, in whatever order and at whatever
    pace, the manager answers as the rotation rule says, and afterwards only
    the current token of a live family is usable."""
    clock = FakeClock()
    grace = 5.0
    manager = TokenPairManager(SECRET, clock=clock, reuse_grace=grace)

    async def attempt() -> None:
        first = (await manager.generate_token_pair({"sub": "a"})).refresh_token
        issued = [first]
        current, previous, rotated_at, revoked = first, None, 0.0, False
        for index, pause in steps:
            presented = issued[min(index, len(issued) - 1)]
            now = clock.advance(pause)
            if revoked:
                expected = "revoked"
            elif presented == current:
                expected = "rotated"
            elif presented == previous and now < rotated_at + grace:
                expected = "retried"
            else:
                expected = "reused"
            try:
                successor = (await manager.refresh(presented)).refresh_token
                outcome = "rotated" if presented == current else "retried"
            except RefreshTokenReusedError:
                outcome = "reused"
            except RefreshTokenError:
                outcome = "revoked"
            assert outcome == expected
            if outcome == "rotated":
                previous, current, rotated_at = current, successor, now
            elif outcome == "retried":
                current = successor
            elif outcome == "reused":
                revoked = True
            if outcome in ("rotated", "retried"):
                issued.append(successor)
        for token in issued:
            active = (await manager.introspect(token))["active"]
            assert active == (token == current and not revoked)

    anyio.run(attempt)
