from __future__ import annotations

import base64
import hashlib
import inspect
import json
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, Self, TypeAlias

import anyio
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry

from ._errors import (
    AccessTokenExpiredError,
    ConfigurationError,
    InvalidAccessTokenError,
    InvalidRefreshTokenError,
    InvalidUserDataError,
    RefreshTokenError,
    RefreshTokenExpiredError,
    RefreshTokenReusedError,
    RefreshTokenRevokedError,
    StoreError,
    TokenPairError,
)
from ._keys import JoseKey, KeyInput, KeyRing
from ._memory import MemoryStore
from ._refresh import looks_like_refresh, mint, open_token
from ._store import NewFamily, Rotation, RotationResult, RotationStatus, Store
from ._token import Token

__all__ = [
    "DEFAULT_ACCESS_TTL",
    "DEFAULT_REFRESH_TTL",
    "DEFAULT_REUSE_GRACE",
    "TokenPairManager",
]

logger = logging.getLogger("tokenpair")
logger.addHandler(logging.NullHandler())

Seconds: TypeAlias = int | float | timedelta
Clock: TypeAlias = Callable[[], float]
PayloadFunction: TypeAlias = Callable[[Any], Mapping[str, Any]]
IdentityFunction: TypeAlias = Callable[[Any], object]
ReloadFunction: TypeAlias = Callable[[str, Any], Awaitable[Any]]

DEFAULT_ACCESS_TTL = timedelta(minutes=15)
"""Access tokens live a quarter of an hour: short enough that a leaked one
does little harm, long enough that clients refresh rarely.
"""
DEFAULT_REFRESH_TTL = timedelta(days=7)
"""A refresh token unused for a week lapses, and with it the login."""
DEFAULT_REUSE_GRACE = timedelta(seconds=10)
"""A client that lost the response to a refresh may retry with the same token
for ten seconds; after that the retry counts as reuse.
"""

REGISTERED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti"})
_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
MAX_ACCESS_TOKEN_LENGTH = 16 * 1024
MAX_USER_DATA_LENGTH = 64 * 1024
# Claims beyond this would make access tokens too long for request headers.
MAX_CLAIMS_LENGTH = 8 * 1024
MAX_SUBJECT_LENGTH = 1024


class TokenPairManager:
    """Issues token pairs, verifies access tokens and rotates refresh tokens.

    ``key`` signs access tokens and binds refresh tokens: an HMAC secret of at
    least the hash size (32 bytes for HS256), a private key as PEM or JWK, a
    joserfc key, or a list of those, of which the first signs and all verify.
    ``store`` keeps refresh state (a fresh :class:`MemoryStore` by default).

    Lifetimes take seconds or :class:`~datetime.timedelta`: ``access_ttl`` for
    access tokens, ``refresh_ttl`` for how long a refresh token stays usable
    without being used, ``family_ttl`` (optional) for how long any chain of
    refreshes may go on after the login that began it. ``reuse_grace`` is how
    long the token rotated last may be presented again, for clients whose
    response got lost; ``0`` disables such retries.

    ``payload(user_data)`` returns extra claims for access tokens and
    ``identity(user_data)`` the subject; without ``identity`` a mapping's
    ``sub`` or ``id`` is used. ``reload(subject, user_data)``, if given, is
    awaited on every refresh before anything rotates: it returns the user's
    current data (or ``None`` to keep the stored data), or raises to refuse.
    ``clock`` returns Unix seconds and decides every expiry.

    The manager owns its store: :meth:`aclose` (or leaving ``async with``)
    closes it.
    """

    def __init__(
        self,
        key: KeyInput | Sequence[KeyInput],
        *,
        algorithm: str = "HS256",
        store: Store | None = None,
        access_ttl: Seconds = DEFAULT_ACCESS_TTL,
        refresh_ttl: Seconds = DEFAULT_REFRESH_TTL,
        family_ttl: Seconds | None = None,
        issuer: str | None = None,
        audience: str | Sequence[str] | None = None,
        leeway: Seconds = 0,
        reuse_grace: Seconds = DEFAULT_REUSE_GRACE,
        clock: Clock | None = None,
        payload: PayloadFunction | None = None,
        identity: IdentityFunction | None = None,
        reload: ReloadFunction | None = None,
    ) -> None:
        self._keys = KeyRing(key, algorithm)
        if store is not None and not isinstance(store, Store):
            raise ConfigurationError(
                f"store must be a tokenpair Store, not {type(store).__name__}"
            )
        self.store: Store = MemoryStore() if store is None else store
        self.access_ttl = _seconds("access_ttl", access_ttl, positive=True)
        self.refresh_ttl = _seconds("refresh_ttl", refresh_ttl, positive=True)
        self.family_ttl = (
            None
            if family_ttl is None
            else _seconds("family_ttl", family_ttl, positive=True)
        )
        self.leeway = _seconds("leeway", leeway, positive=False)
        self.reuse_grace = _seconds("reuse_grace", reuse_grace, positive=False)
        if issuer is not None and (not isinstance(issuer, str) or not issuer):
            raise ConfigurationError("issuer must be a non-empty string or None")
        self.issuer = issuer
        self._audiences = _audiences(audience)
        self.audience: str | list[str] | None = (
            None
            if not self._audiences
            else self._audiences[0]
            if isinstance(audience, str)
            else list(self._audiences)
        )
        for name, function in (
            ("clock", clock),
            ("payload", payload),
            ("identity", identity),
            ("reload", reload),
        ):
            if function is not None and not callable(function):
                raise ConfigurationError(f"{name} must be callable")
        self._clock: Clock = time.time if clock is None else clock
        self._payload = payload
        self._identity = identity
        self._reload = reload
        self._algorithms = [algorithm]
        self._header = {
            "alg": algorithm,
            "typ": "at+jwt",
            "kid": self._keys.signing_kid,
        }
        # The header never changes, so it is encoded once; joserfc's own
        # algorithm object still makes every signature.
        header_json = json.dumps(self._header, separators=(",", ":")).encode("ascii")
        self._signing_prefix = _b64(header_json) + b"."
        self._signer = JWSRegistry(algorithms=self._algorithms).get_alg(algorithm)
        self._tag_key = self._keys.tag_keys[0]
        self._verify_key: JoseKey | Callable[[Any], JoseKey] = (
            self._keys.signing_key if len(self._keys.keys) == 1 else self._pick_key
        )
        self._ready = False
        self._setup_lock = anyio.Lock()

    def __repr__(self) -> str:
        return (
            f"TokenPairManager(algorithm={self._keys.algorithm!r}, "
            f"store={self.store!r}, issuer={self.issuer!r})"
        )

    @property
    def algorithm(self) -> str:
        return self._keys.algorithm

    def now(self) -> float:
        """The manager's clock, in Unix seconds."""
        return float(self._clock())

    # -- issuing ---------------------------------------------------------

    async def generate_token_pair(self, user_data: Any) -> Token:
        """Issue an access token and a refresh token that starts a new family.

        ``user_data`` is kept with the family as JSON and turned into claims
        by ``payload`` and ``identity`` now and on every refresh.
        """
        stored, subject, claims = self._prepare(user_data)
        await self._ensure_ready()
        now = self.now()
        token, family = self._new_family(subject, stored, claims, now)
        await self.store.create_family(family)
        logger.debug("issued a token pair to subject %r", subject)
        return token

    async def generate_token_pair_with_revocation(
        self, user_data: Any, old_refresh_token: str
    ) -> Token:
        """Issue a new pair for ``user_data`` and revoke ``old_refresh_token``.

        The old token must be live: one that is invalid, expired, revoked or
        already rotated raises and nothing new is issued (a rotated one also
        revokes its family, as reuse). Its family ends either way.
        """
        old_family, old_digest = open_token(old_refresh_token, self._keys.tag_keys)
        stored, subject, claims = self._prepare(user_data)
        await self._ensure_ready()
        now = self.now()
        token, family = self._new_family(subject, stored, claims, now)
        # The new family is written first, so that no failure can leave the
        # caller with neither the old token nor a new one.
        await self.store.create_family(family)
        try:
            result = await self._rotate(old_family, old_digest, None, now)
            if result.status is not RotationStatus.ROTATED:
                self._refuse(result, old_family)
        except BaseException:
            with anyio.CancelScope(shield=True):
                try:
                    await self.store.revoke_family(family.family_id, now)
                except StoreError:
                    logger.warning(
                        "could not withdraw an unreturned family; it expires "
                        "unused at the end of its lifetime"
                    )
            raise
        logger.debug("replaced a token pair of subject %r", subject)
        return token

    # -- refreshing ------------------------------------------------------

    async def refresh(self, refresh_token: str) -> Token:
        """Consume ``refresh_token`` and return a new pair of the same family.

        Exactly one caller succeeds with a given token. Presenting a token
        that was already rotated revokes the family and raises
        :class:`RefreshTokenReusedError`, except for a retry with the token
        rotated last within ``reuse_grace``.
        """
        family_id, digest = open_token(refresh_token, self._keys.tag_keys)
        await self._ensure_ready()
        now = self.now()
        new_data: str | None = None
        if self._reload is not None:
            new_data = await self._reloaded_data(self._reload, family_id, digest, now)
            if new_data is not None:
                now = self.now()
        successor, successor_digest = mint(family_id, self._tag_key)
        result = await self._rotate(
            family_id,
            digest,
            successor_digest,
            now,
            reuse_grace=self.reuse_grace,
            user_data=new_data,
        )
        if result.status is RotationStatus.ROTATED:
            logger.debug("rotated a refresh token of subject %r", result.subject)
        elif result.status is RotationStatus.RETRIED:
            logger.info(
                "accepted a retry within the grace window for family %s",
                _fingerprint(family_id),
            )
        else:
            self._refuse(result, family_id)
        if result.subject is None or result.user_data is None:
            raise StoreError("the store returned a rotation without its family data")
        try:
            claims = self._claims(json.loads(result.user_data))
            access_token, issued_at, expires_at = self._sign(
                result.subject, claims, now
            )
        except BaseException:
            # The caller never sees the successor, so hand the family back to
            # the presented token rather than leave the client locked out.
            with anyio.CancelScope(shield=True):
                await self._restore(family_id, successor_digest, digest, now)
            raise
        refresh_expires_at = now + self.refresh_ttl
        if result.expires_at is not None:
            refresh_expires_at = result.expires_at
        return Token(
            access_token=access_token,
            refresh_token=successor,
            expires_at=expires_at,
            created_at=issued_at,
            refresh_expires_at=math.floor(refresh_expires_at),
        )

    async def _rotate(
        self,
        family_id: str,
        presented: str,
        successor: str | None,
        now: float,
        *,
        reuse_grace: float = 0.0,
        user_data: str | None = None,
    ) -> RotationResult:
        return await self.store.rotate(
            Rotation(
                family_id=family_id,
                presented=presented,
                successor=successor,
                now=now,
                refresh_ttl=self.refresh_ttl,
                reuse_grace=reuse_grace,
                user_data=user_data,
            )
        )

    async def _restore(
        self, family_id: str, successor_digest: str, digest: str, now: float
    ) -> None:
        try:
            await self._rotate(family_id, successor_digest, digest, now)
        except StoreError:
            logger.warning(
                "could not hand family %s back to its refresh token",
                _fingerprint(family_id),
            )

    async def _reloaded_data(
        self, reload: ReloadFunction, family_id: str, digest: str, now: float
    ) -> str | None:
        state = await self.store.get_family(family_id)
        if state is None or state.revoked_at is not None or now >= state.expires_at:
            return None
        retry = (
            digest == state.previous
            and state.rotated_at is not None
            and now < state.rotated_at + self.reuse_grace
        )
        if digest != state.current and not retry:
            # Let the store take the decision (and revoke on reuse) without
            # asking the application about a token that will be refused.
            return None
        pending = reload(state.subject, json.loads(state.user_data))
        if not inspect.isawaitable(pending):
            raise ConfigurationError("reload must be an async function")
        try:
            fresh = await pending
        except TokenPairError:
            raise
        except Exception as exc:
            raise RefreshTokenError(
                f"the application refused the refresh ({type(exc).__name__})"
            ) from exc
        if fresh is None:
            return None
        stored, subject, _ = self._prepare(fresh)
        if subject != state.subject:
            raise InvalidUserDataError(
                "reload returned data of another subject; a family keeps its subject"
            )
        return stored

    # -- verifying -------------------------------------------------------

    def verify_access_token(self, access_token: str) -> dict[str, Any]:
        """Check an access token's signature, type and claims; return the
        claims. Subject-wide logouts are checked by :meth:`authenticate`."""
        if not isinstance(access_token, str):
            raise InvalidAccessTokenError(
                "no access token was given"
                if access_token is None
                else f"an access token is a string, not {type(access_token).__name__}"
            )
        if not access_token:
            raise InvalidAccessTokenError("the access token is empty")
        if len(access_token) > MAX_ACCESS_TOKEN_LENGTH:
            raise InvalidAccessTokenError("the access token is too long")
        if looks_like_refresh(access_token):
            raise InvalidAccessTokenError(
                "a refresh token was given where an access token is expected"
            )
        if not access_token.isascii() or access_token.count(".") != 2:
            raise InvalidAccessTokenError("the access token is not a compact JWS")
        try:
            decoded = jwt.decode(access_token, self._verify_key, self._algorithms)
        except (JoseError, ValueError, TypeError, KeyError, IndexError) as exc:
            raise InvalidAccessTokenError(
                f"the access token does not verify ({type(exc).__name__})"
            ) from None
        header, claims = decoded.header, decoded.claims
        if not isinstance(claims, dict):
            raise InvalidAccessTokenError("the access token's payload is not an object")
        token_type = header.get("typ")
        if (
            not isinstance(token_type, str)
            or token_type.lower() not in _ACCESS_TOKEN_TYPES
        ):
            raise InvalidAccessTokenError("the token is not an access token (typ)")
        self._check_claims(claims)
        return claims

    async def authenticate(self, access_token: str) -> dict[str, Any]:
        """:meth:`verify_access_token`, and reject tokens issued before their
        subject was logged out everywhere."""
        claims = self.verify_access_token(access_token)
        await self._ensure_ready()
        now = self.now()
        cutoff = await self.store.subject_revoked_at(claims["sub"], now)
        if cutoff is not None and _issued_micros(claims) <= _micros(cutoff):
            raise InvalidAccessTokenError(
                "the subject was logged out after this token was issued"
            )
        return claims

    # -- revoking --------------------------------------------------------

    async def revoke(self, refresh_token: str) -> None:
        """Revoke the family of ``refresh_token``.

        As RFC 7009 asks, a token that is unknown, expired, already revoked,
        or not one of ours at all is no error: there is nothing to revoke.
        Only a value that is not a string raises.
        """
        if not isinstance(refresh_token, str):
            raise InvalidRefreshTokenError(
                "no refresh token was given"
                if refresh_token is None
                else f"a refresh token is a string, not {type(refresh_token).__name__}"
            )
        try:
            family_id, _ = open_token(refresh_token, self._keys.tag_keys)
        except InvalidRefreshTokenError:
            return
        await self._ensure_ready()
        await self.store.revoke_family(family_id, self.now())
        logger.debug("revoked family %s", _fingerprint(family_id))

    async def revoke_subject(self, subject: str) -> int:
        """Log ``subject`` out everywhere: revoke all of its families and
        reject its access tokens issued until now. Returns how many live
        families were revoked."""
        subject = _subject(subject)
        await self._ensure_ready()
        now = self.now()
        # Every access token issued before ``now`` has expired after this.
        remember_until = now + self.access_ttl + self.leeway + 1.0
        count = await self.store.revoke_subject(subject, now, remember_until)
        logger.info("logged out subject %r: %d families revoked", subject, count)
        return count

    async def introspect(
        self, token: object, token_type_hint: str | None = None
    ) -> dict[str, Any]:
        """Describe a token as RFC 7662 does: ``{"active": False}`` for
        anything that is not a live token of ours, never an error.

        A live access token yields its claims; a live refresh token (the
        current one of its family) yields ``sub``, ``exp`` and ``iat``. The
        hint only decides which kind is tried first. A failing store still
        raises :class:`StoreError`: "unknown" is not the same as "inactive".
        """
        inactive: dict[str, Any] = {"active": False}
        if not isinstance(token, str) or not token:
            return inactive
        kinds = ["access_token", "refresh_token"]
        if token_type_hint == "refresh_token" or looks_like_refresh(token):
            kinds.reverse()
        for kind in kinds:
            if kind == "refresh_token":
                described = await self._describe_refresh_token(token)
            else:
                try:
                    claims = await self.authenticate(token)
                except InvalidAccessTokenError:
                    continue
                described = {**claims, "active": True, "token_type": "Bearer"}
            if described is not None:
                return described
        return inactive

    async def _describe_refresh_token(self, token: str) -> dict[str, Any] | None:
        try:
            family_id, digest = open_token(token, self._keys.tag_keys)
        except InvalidRefreshTokenError:
            return None
        await self._ensure_ready()
        state = await self.store.get_family(family_id)
        now = self.now()
        if (
            state is None
            or state.revoked_at is not None
            or now >= state.expires_at
            or digest != state.current
        ):
            return None
        issued = state.created_at if state.rotated_at is None else state.rotated_at
        described: dict[str, Any] = {
            "active": True,
            "sub": state.subject,
            "exp": math.floor(state.expires_at),
            "iat": math.floor(issued),
        }
        if self.issuer is not None:
            described["iss"] = self.issuer
        return described

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWK Set (RFC 7517); empty for HMAC keys."""
        return self._keys.jwks()

    async def purge_expired(self) -> int:
        """Remove expired state from stores that have no native expiry."""
        await self._ensure_ready()
        return await self.store.purge_expired(self.now())

    # -- lifecycle -------------------------------------------------------

    async def aclose(self) -> None:
        """Close the store."""
        await self.store.aclose()

    async def __aenter__(self) -> Self:
        await self._ensure_ready()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _ensure_ready(self) -> None:
        if self._ready:
            return
        async with self._setup_lock:
            if not self._ready:
                try:
                    await self.store.setup()
                except TokenPairError:
                    raise
                except Exception as exc:
                    raise StoreError(
                        f"the store could not be set up ({type(exc).__name__})"
                    ) from exc
                self._ready = True

    # -- internals -------------------------------------------------------

    def _prepare(self, user_data: Any) -> tuple[str, str, dict[str, Any]]:
        """User data as stored, its subject and its claims, checked before
        anything is written. Claims are made from the stored JSON so that a
        refresh produces exactly what the first issue did."""
        if user_data is None:
            raise InvalidUserDataError("no user data was given")
        stored = _to_json(user_data)
        if self._identity is None and self._payload is None:
            # Nothing but the subject is read, and JSON keeps a string key's
            # value as it is, so the round trip below can be skipped.
            restored = user_data if isinstance(user_data, dict) else None
        else:
            restored = json.loads(stored)
        if self._identity is not None:
            subject = _subject(_call("identity", self._identity, restored))
        elif isinstance(restored, dict) and ("sub" in restored or "id" in restored):
            subject = _subject(restored["sub"] if "sub" in restored else restored["id"])
        else:
            raise InvalidUserDataError(
                "user data needs a 'sub' or 'id' key, or pass identity= to the "
                "manager to derive the subject"
            )
        return stored, subject, self._claims(restored)

    def _claims(self, user_data: Any) -> dict[str, Any]:
        if self._payload is None:
            return {}
        extra = _call("payload", self._payload, user_data)
        if not isinstance(extra, Mapping):
            raise InvalidUserDataError(
                f"payload must return a mapping of claims, not {type(extra).__name__}"
            )
        claims = dict(extra)
        for name in claims:
            if not isinstance(name, str):
                raise InvalidUserDataError("claim names must be strings")
            if name in REGISTERED_CLAIMS:
                raise InvalidUserDataError(
                    f"payload may not set the registered claim {name!r}; "
                    "the manager sets it"
                )
        if len(_to_json(claims, what="claims")) > MAX_CLAIMS_LENGTH:
            raise InvalidUserDataError(
                f"the claims from payload exceed {MAX_CLAIMS_LENGTH} characters as "
                "JSON; access tokens travel in request headers"
            )
        return claims

    def _new_family(
        self, subject: str, stored: str, claims: dict[str, Any], now: float
    ) -> tuple[Token, NewFamily]:
        family_id = self.store.new_family_id(subject)
        refresh_token, digest = mint(family_id, self._tag_key)
        family_expires_at = None if self.family_ttl is None else now + self.family_ttl
        expires_at = now + self.refresh_ttl
        if family_expires_at is not None:
            expires_at = min(expires_at, family_expires_at)
        access_token, issued_at, access_expires_at = self._sign(subject, claims, now)
        token = Token(
            access_token=access_token,
            refresh_token=refresh_token,
            expires_at=access_expires_at,
            created_at=issued_at,
            refresh_expires_at=math.floor(expires_at),
        )
        family = NewFamily(
            family_id=family_id,
            subject=subject,
            user_data=stored,
            token=digest,
            created_at=now,
            expires_at=expires_at,
            family_expires_at=family_expires_at,
        )
        return token, family

    def _sign(
        self, subject: str, extra: dict[str, Any], now: float
    ) -> tuple[str, int, int]:
        issued_at = math.floor(now)
        expires_at = math.floor(now + self.access_ttl)
        claims: dict[str, Any] = dict(extra)
        if self.issuer is not None:
            claims["iss"] = self.issuer
        claims["sub"] = subject
        if self.audience is not None:
            claims["aud"] = self.audience
        claims["exp"] = expires_at
        claims["iat"] = issued_at
        claims["jti"] = _new_jti(now)
        payload = json.dumps(claims, ensure_ascii=False, separators=(",", ":"))
        signing_input = self._signing_prefix + _b64(payload.encode("utf-8"))
        signature = self._signer.sign(signing_input, self._keys.signing_key)
        token = (signing_input + b"." + _b64(signature)).decode("ascii")
        return token, issued_at, expires_at

    def _check_claims(self, claims: dict[str, Any]) -> None:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidAccessTokenError("the access token has no subject")
        if not isinstance(claims.get("jti"), str):
            raise InvalidAccessTokenError("the access token has no jti")
        if self.issuer is not None and claims.get("iss") != self.issuer:
            raise InvalidAccessTokenError("the access token is from another issuer")
        if self._audiences:
            audience = claims.get("aud")
            granted = [audience] if isinstance(audience, str) else audience
            if not isinstance(granted, list) or not any(
                item in self._audiences for item in granted
            ):
                raise InvalidAccessTokenError(
                    "the access token is for another audience"
                )
        now = self.now()
        expires_at = _required_time(claims, "exp")
        issued_at = _required_time(claims, "iat")
        not_before = _optional_time(claims, "nbf")
        if now >= expires_at + self.leeway:
            raise AccessTokenExpiredError("the access token has expired")
        if not_before is not None and now + self.leeway < not_before:
            raise InvalidAccessTokenError("the access token is not valid yet")
        if issued_at > now + self.leeway:
            raise InvalidAccessTokenError("the access token was issued in the future")

    def _pick_key(self, obj: Any) -> JoseKey:
        key = self._keys.verification_key(obj.headers().get("kid"))
        if key is None:
            raise InvalidAccessTokenError(
                "the access token was signed by an unknown key"
            )
        return key

    def _refuse(self, result: RotationResult, family_id: str) -> None:
        status = result.status
        if status is RotationStatus.REUSED:
            logger.warning(
                "refresh token reuse detected: family %s of subject %r revoked",
                _fingerprint(family_id),
                result.subject,
            )
            raise RefreshTokenReusedError(
                "the refresh token was already used; its family is now revoked"
            )
        if status is RotationStatus.REVOKED:
            raise RefreshTokenRevokedError("the refresh token has been revoked")
        if status is RotationStatus.EXPIRED:
            raise RefreshTokenExpiredError("the refresh token has expired")
        if status is RotationStatus.UNKNOWN:
            raise InvalidRefreshTokenError("the refresh token is unknown")
        raise StoreError(f"the store answered a rotation with {status.value!r}")


def _seconds(name: str, value: object, *, positive: bool) -> float:
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigurationError(
            f"{name} must be seconds or a timedelta, not {type(value).__name__}"
        )
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        bound = "greater than 0" if positive else "0 or more"
        raise ConfigurationError(f"{name} must be finite and {bound}")
    return seconds


def _audiences(audience: object) -> tuple[str, ...]:
    if audience is None:
        return ()
    if isinstance(audience, str):
        items: list[object] = [audience]
    elif isinstance(audience, Sequence):
        items = list(audience)
    else:
        raise ConfigurationError("audience must be a string, a list of strings or None")
    if not items or not all(isinstance(item, str) and item for item in items):
        raise ConfigurationError("audience must hold non-empty strings")
    return tuple(str(item) for item in items)


def _subject(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidUserDataError(
            f"the subject must be a string or an integer, not {type(value).__name__}"
        )
    try:
        subject = str(value)
    except ValueError:
        raise InvalidUserDataError("the subject is an integer too large") from None
    if not subject:
        raise InvalidUserDataError("the subject is empty")
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise InvalidUserDataError("the subject is too long")
    if not _encodable(subject):
        raise InvalidUserDataError("the subject is not valid Unicode text")
    return subject


def _call(name: str, function: Callable[[Any], Any], argument: Any) -> Any:
    try:
        return function(argument)
    except TokenPairError:
        raise
    except Exception as exc:
        raise InvalidUserDataError(f"{name} failed: {type(exc).__name__}") from exc


def _to_json(value: Any, what: str = "user data") -> str:
    try:
        text = json.dumps(
            value, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        )
    except RecursionError:
        raise InvalidUserDataError(f"{what} is nested too deeply") from None
    except (TypeError, ValueError) as exc:
        if "circular" in str(exc).lower():
            raise InvalidUserDataError(f"{what} refers to itself") from None
        try:
            path, problem = _find_unserialisable(value)
        except RecursionError:
            raise InvalidUserDataError(f"{what} is nested too deeply") from None
        where = f" at {path}:" if path else ""
        raise InvalidUserDataError(
            f"{what} must be JSON-serialisable;{where} {problem or 'it is not'}"
        ) from exc
    if len(text) > MAX_USER_DATA_LENGTH:
        raise InvalidUserDataError(
            f"{what} is {len(text)} characters as JSON; at most "
            f"{MAX_USER_DATA_LENGTH} are kept"
        )
    if not _encodable(text):
        raise InvalidUserDataError(
            f"{what} holds a string that is not valid Unicode (a lone surrogate)"
        )
    return text


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _find_unserialisable(value: Any, path: str = "") -> tuple[str, str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str | int | float | bool) and key is not None:
                return path or "the top level", f"the key {key!r} is not a string"
            found = _find_unserialisable(item, f"{path}.{key}" if path else str(key))
            if found[1]:
                return found
        return "", ""
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _find_unserialisable(item, f"{path}[{index}]")
            if found[1]:
                return found
        return "", ""
    if isinstance(value, float) and not math.isfinite(value):
        return path, f"{value!r} is not a JSON number"
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            str(value)
        except ValueError:
            return path or "the top level", "an integer too large"
    if value is None or isinstance(value, str | int | float | bool):
        return "", ""
    return path, f"a {type(value).__name__} is not"


def _required_time(claims: dict[str, Any], name: str) -> float:
    value = _optional_time(claims, name)
    if value is None:
        raise InvalidAccessTokenError(f"the access token has no {name} claim")
    return value


def _optional_time(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidAccessTokenError(f"the {name} claim is not a number")
    if not math.isfinite(value):
        raise InvalidAccessTokenError(f"the {name} claim is not a finite number")
    return float(value)


def _b64(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def _micros(seconds: float) -> int:
    return math.floor(seconds * 1_000_000)


def _new_jti(now: float) -> str:
    # The issue time, to the microsecond, leads the jti, so that a logout
    # can tell tokens apart that share their whole-second iat.
    stamp = _micros(now).to_bytes(8, "big", signed=False)
    raw = stamp + secrets.token_bytes(10)
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _issued_micros(claims: dict[str, Any]) -> int:
    jti = claims.get("jti")
    if isinstance(jti, str) and len(jti) == 24:
        try:
            raw = base64.urlsafe_b64decode(jti)
        except ValueError:
            raw = b""
        if len(raw) == 18:
            return int.from_bytes(raw[:8], "big")
    issued_at = claims.get("iat")
    if isinstance(issued_at, int | float) and not isinstance(issued_at, bool):
        return _micros(float(issued_at))
    return 0


def _fingerprint(family_id: str) -> str:
    """A short, stable name for a family in logs, which are read by more
    people than tokens should be."""
    return hashlib.sha256(family_id.encode("ascii")).hexdigest()[:12]
