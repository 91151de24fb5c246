"""``python -m tokenpair``: a demonstration, and store maintenance."""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Sequence

import anyio

from ._errors import (
    ConfigurationError,
    InvalidAccessTokenError,
    RefreshTokenError,
    TokenPairError,
)
from ._manager import TokenPairManager
from ._memory import MemoryStore
from ._urls import mask_secret_options, open_store

__all__ = ["main"]

DEFAULT_DEMO_STORE = "sqlite:///tokenpair-demo.db"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tokenpair",
        description="Token pairs with atomically rotated refresh tokens.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="issue, rotate, detect reuse and log out, step by step"
    )
    demo.add_argument(
        "--store",
        default=DEFAULT_DEMO_STORE,
        help=f"store URL (default: {DEFAULT_DEMO_STORE}, a file in this folder)",
    )
    purge = commands.add_parser(
        "purge", help="delete expired state from a store without native expiry"
    )
    purge.add_argument("--store", required=True, help="store URL")
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "demo":
            anyio.run(_demo, arguments.store)
        else:
            anyio.run(_purge, arguments.store)
    except TokenPairError as exc:
        print(f"error: {exc.description}", file=sys.stderr)
        return 1
    return 0


async def _demo(store_url: str) -> None:
    # A key of its own for every run: the demo's tokens are worthless outside it.
    key = secrets.token_bytes(32)
    store = open_store(store_url)
    _say(f"Store: {_without_credentials(store_url)}")
    async with TokenPairManager(key, store=store, reuse_grace=0) as manager:
        user = {"sub": "alice", "name": "Alice", "role": "admin"}

        _say("\n1. Log in: generate a token pair")
        first = await manager.generate_token_pair(user)
        _show(first.access_token, first.refresh_token, first.expires_in(time.time()))

        _say("\n2. Refresh: the refresh token is consumed and replaced")
        second = await manager.refresh(first.refresh_token)
        _show(second.access_token, second.refresh_token, second.expires_in())

        _say("\n3. Present the old refresh token again")
        try:
            await manager.refresh(first.refresh_token)
        except RefreshTokenError as exc:
            _say(f"   refused: {type(exc).__name__} ({exc.error}): {exc.description}")

        _say("\n4. The latest refresh token of that family is now dead too")
        try:
            await manager.refresh(second.refresh_token)
        except RefreshTokenError as exc:
            _say(f"   refused: {type(exc).__name__}: {exc.description}")

        _say("\n5. Log in on two devices, then log out everywhere")
        phone = await manager.generate_token_pair(user)
        await manager.generate_token_pair(user)
        revoked = await manager.revoke_subject("alice")
        _say(f"   families revoked: {revoked}")
        try:
            await manager.authenticate(phone.access_token)
        except InvalidAccessTokenError as exc:
            _say(f"   phone's access token refused: {exc.description}")
        try:
            await manager.refresh(phone.refresh_token)
        except RefreshTokenError as exc:
            _say(f"   phone's refresh token refused: {type(exc).__name__}")


async def _purge(store_url: str) -> None:
    store = open_store(store_url)
    if isinstance(store, MemoryStore):
        raise ConfigurationError(
            "a memory:// store lives inside one process; there is nothing to purge"
        )
    # A file store opened here would create the file; purging a database
    # that does not exist is a mistyped path, not an empty store.
    path = getattr(store, "path", None)
    if isinstance(path, str) and not await anyio.Path(path).exists():
        raise ConfigurationError(f"there is no database file at {path}")
    async with store:
        removed = await store.purge_expired(time.time())
    _say(f"removed {removed} expired records")


def _without_credentials(url: str) -> str:
    """The URL for display: everything up to its last "@" (user, password,
    and whatever an unencoded character in a password pushed along) hidden,
    and so is every option that holds a password."""
    url = mask_secret_options(url)
    scheme, separator, rest = url.partition("://")
    if "@" not in rest:
        return url
    return f"{scheme}{separator}***@{rest.rpartition('@')[2]}"


def _show(access_token: str, refresh_token: str, expires_in: int) -> None:
    _say(f"   access token:  {access_token}")
    _say(f"   refresh token: {refresh_token}")
    _say(f"   expires in:    {expires_in} s")


def _say(line: str) -> None:
    print(line, flush=True)
