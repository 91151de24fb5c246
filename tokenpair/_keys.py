"""Signing keys: loading, checking against the algorithm, and key rotation."""

from __future__ import annotations

import hashlib
import hmac
import json
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias, cast

from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, JWKRegistry, OctKey, OKPKey, RSAKey

from ._errors import ConfigurationError

__all__ = ["JoseKey", "KeyInput", "KeyRing", "SUPPORTED_ALGORITHMS"]

JoseKey: TypeAlias = OctKey | RSAKey | ECKey | OKPKey
KeyInput: TypeAlias = str | bytes | Mapping[str, Any] | JoseKey

# algorithm -> (key type, curve or None, minimum size in bytes for secrets/RSA)
SUPPORTED_ALGORITHMS: dict[str, tuple[str, str | None, int]] = {
    "HS256": ("oct", None, 32),
    "HS384": ("oct", None, 48),
    "HS512": ("oct", None, 64),
    "RS256": ("RSA", None, 256),
    "RS384": ("RSA", None, 256),
    "RS512": ("RSA", None, 256),
    "PS256": ("RSA", None, 256),
    "PS384": ("RSA", None, 256),
    "PS512": ("RSA", None, 256),
    "ES256": ("EC", "P-256", 0),
    "ES384": ("EC", "P-384", 0),
    "ES512": ("EC", "P-521", 0),
    "Ed25519": ("OKP", "Ed25519", 0),
}

_TAG_CONTEXT = b"tokenpair refresh-token tag v1"
_PRIVATE_PARAMS = ("k", "d", "p", "q", "dp", "dq", "qi")


class KeyRing:
    """The keys of one manager: the first signs, every one verifies.

    Keys without a ``kid`` get their RFC 7638 thumbprint as ``kid`` so that a
    verifier can pick the right key after a rotation. Each key that holds
    private material also yields a refresh-tag key, derived from it with
    HMAC-SHA-256 under a fixed context, so refresh tokens are bound to the
    same secrets as access tokens and survive a key rotation the same way.
    """

    __slots__ = ("_by_kid", "algorithm", "keys", "signing_key", "tag_keys")

    def __init__(self, key: KeyInput | Sequence[KeyInput], algorithm: str) -> None:
        if algorithm not in SUPPORTED_ALGORITHMS:
            supported = ", ".join(SUPPORTED_ALGORITHMS)
            raise ConfigurationError(
                f"algorithm {algorithm!r} is not supported; use one of {supported}"
            )
        self.algorithm = algorithm
        entries: Sequence[KeyInput]
        if isinstance(key, str | bytes | Mapping | JoseKey):
            entries = [key]
        elif isinstance(key, Sequence):
            entries = list(cast(Sequence[KeyInput], key))
        else:
            raise ConfigurationError(
                "key must be str, bytes, a JWK mapping, a joserfc key or a list "
                f"of those, not {type(key).__name__}"
            )
        if not entries:
            raise ConfigurationError("at least one key is required")
        self.keys: list[JoseKey] = [
            _load(entry, algorithm, position) for position, entry in enumerate(entries)
        ]
        self._by_kid: dict[str, JoseKey] = {}
        for item in self.keys:
            item.ensure_kid()
            kid = str(item.kid)
            if kid in self._by_kid:
                raise ConfigurationError(f"two keys share the kid {kid!r}")
            self._by_kid[kid] = item
        self.signing_key = self.keys[0]
        if not self.signing_key.is_private:
            raise ConfigurationError(
                "the first key signs and must be a private key; "
                "public keys may only follow it, for verification"
            )
        self.tag_keys: list[bytes] = [
            _tag_key(item) for item in self.keys if item.is_private
        ]

    @property
    def signing_kid(self) -> str:
        return str(self.signing_key.kid)

    def verification_key(self, kid: object) -> JoseKey | None:
        if kid is None and len(self.keys) == 1:
            return self.signing_key
        if isinstance(kid, str):
            return self._by_kid.get(kid)
        return None

    def jwks(self) -> dict[str, Any]:
        """Public keys as a JWK Set; symmetric keys are never published."""
        published = []
        for item in self.keys:
            if isinstance(item, OctKey):
                continue
            public = item.as_dict(private=False)
            public.setdefault("use", "sig")
            public.setdefault("alg", self.algorithm)
            published.append(public)
        return {"keys": published}


def _load(entry: KeyInput, algorithm: str, position: int) -> JoseKey:
    key_type, curve, minimum = SUPPORTED_ALGORITHMS[algorithm]
    where = "the key" if position == 0 else f"key #{position + 1}"
    try:
        with warnings.catch_warnings():
            # joserfc warns about weak keys; the checks below refuse them.
            warnings.simplefilter("ignore", SecurityWarning)
            loaded = _import(entry, key_type)
    except ConfigurationError:
        raise
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        # The message of the underlying error may quote key material.
        raise ConfigurationError(
            f"{where} could not be loaded as a {key_type} key for {algorithm} "
            f"({type(exc).__name__})"
        ) from None
    if loaded.key_type != key_type:
        raise ConfigurationError(
            f"{where} is a {loaded.key_type} key, but {algorithm} needs a "
            f"{key_type} key"
        )
    if isinstance(loaded, OctKey):
        size = len(loaded.raw_value)
        if size < minimum:
            raise ConfigurationError(
                f"{where} is {size} bytes long; {algorithm} needs a secret of at "
                f"least {minimum} bytes (generate one with secrets.token_bytes)"
            )
    elif isinstance(loaded, RSAKey):
        size = loaded.public_key.key_size // 8
        if size < minimum:
            raise ConfigurationError(
                f"{where} is a {size * 8}-bit RSA key; at least 2048 bits are needed"
            )
    elif isinstance(loaded, ECKey | OKPKey) and loaded.curve_name != curve:
        raise ConfigurationError(
            f"{where} is on curve {loaded.curve_name}, but {algorithm} needs {curve}"
        )
    return loaded


def _import(entry: KeyInput, key_type: str) -> JoseKey:
    if isinstance(entry, OctKey | RSAKey | ECKey | OKPKey):
        return entry
    if isinstance(entry, Mapping):
        data = dict(entry)
        if data.get("kty") != key_type:
            raise ConfigurationError(
                f"the JWK has kty {data.get('kty')!r}, expected {key_type!r}"
            )
        imported = JWKRegistry.import_key(data)
    elif isinstance(entry, str | bytes):
        raw = entry.encode() if isinstance(entry, str) else entry
        looks_like_pem = raw.lstrip().startswith(b"-----BEGIN")
        if key_type == "oct":
            if looks_like_pem:
                raise ConfigurationError(
                    "a PEM key was given for an HMAC algorithm; "
                    "choose an algorithm such as RS256 or ES256 for it"
                )
            imported = OctKey.import_key(raw)
        elif not looks_like_pem:
            raise ConfigurationError(
                f"a plain secret was given, but the algorithm needs a {key_type} "
                "key as PEM, JWK or joserfc key"
            )
        else:
            imported = JWKRegistry.import_key(raw, key_type)
    else:
        raise ConfigurationError(
            f"a key must be str, bytes, a JWK mapping or a joserfc key, "
            f"not {type(entry).__name__}"
        )
    if not isinstance(imported, OctKey | RSAKey | ECKey | OKPKey):
        raise ConfigurationError("unsupported key object")
    return imported


def _tag_key(key: JoseKey) -> bytes:
    private = key.as_dict(private=True)
    material = {name: private[name] for name in _PRIVATE_PARAMS if name in private}
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
    return hmac.digest(encoded, _TAG_CONTEXT, hashlib.sha256)
