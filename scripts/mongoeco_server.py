"""Serve mongoeco's MongoDB wire protocol on a loopback port.

The test suite uses this when no real ``mongod`` is given: mongoeco needs
Python 3.13 or later, so it runs in a venv of its own and this script is the
whole interface between the two interpreters. It binds ``--host``/``--port``
(port 0 picks a free one), prints ``READY <port>`` on one line once clients
can connect, and serves until it receives SIGTERM or SIGINT, or until its
standard input closes (so it dies with the process that started it).

Run it with the interpreter of the venv that has ``mongoeco[wire]``::

    .venv-mongoeco/bin/python scripts/mongoeco_server.py --port 27017
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys


async def _stdin_closed() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    while await reader.read(4096):
        pass


async def serve(host: str, port: int, *, watch_stdin: bool) -> None:
    from mongoeco.engines.memory import MemoryEngine
    from mongoeco.wire import AsyncMongoEcoProxyServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with AsyncMongoEcoProxyServer(
        engine=MemoryEngine(), host=host, port=port
    ) as server:
        print(f"READY {server.address.port}", flush=True)
        waiters = {asyncio.ensure_future(stop.wait())}
        if watch_stdin:
            waiters.add(asyncio.ensure_future(_stdin_closed()))
        _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--no-stdin-watch",
        action="store_true",
        help="keep serving when standard input closes",
    )
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, watch_stdin=not args.no_stdin_watch))


if __name__ == "__main__":
    main()
