"""A MongoDB wire-protocol server for the test session.

``TOKENPAIR_MONGODB_URL`` names a real ``mongod`` (or a replica set, or
``mongos``) to test against. Without it the session starts mongoeco's
wire-protocol server, pinned to :data:`MONGOECO_VERSION`: mongoeco needs
Python 3.13 or later, so it gets a venv of its own, ``.venv-mongoeco`` at the
top of the repository, made with the first interpreter found among
``TOKENPAIR_MONGOECO_PYTHON``, ``python3.13`` and ``python3.14`` on ``PATH``,
and the pyenv versions under ``~/.pyenv/versions``.

Making that venv downloads packages, so CI does it before the tests run::

    .venv/bin/python tests/support/mongo_server.py --prepare

A server that cannot be started fails the session when ``CI=true`` and skips
the MongoDB tests otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

__all__ = ["MONGOECO_VERSION", "MongoecoServer", "mongodb_url", "prepare_venv"]

#: The mongoeco release the suite is known to pass against.
MONGOECO_VERSION = "4.11.0"

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv-mongoeco"
SERVER_SCRIPT = REPO / "scripts" / "mongoeco_server.py"

_STARTUP_TIMEOUT = 60.0


class ServerUnavailableError(Exception):
    """No MongoDB server can be had for this session."""


@pytest.fixture(scope="session")
def mongodb_url() -> Iterator[str]:
    """A ``mongodb://`` URL of a server that lives as long as the session."""
    url = os.environ.get("TOKENPAIR_MONGODB_URL")
    if url:
        yield url
        return
    server: MongoecoServer | None = None
    problem = ""
    try:
        server = MongoecoServer.start()
    except ServerUnavailableError as exc:
        problem = f"no MongoDB server for the tests: {exc}"
    if server is None:
        if os.environ.get("CI") == "true":
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    try:
        yield server.url
    finally:
        server.stop()


def find_python() -> Path:
    """An interpreter that can run mongoeco (Python 3.13 or later)."""
    candidates: list[str] = []
    if chosen := os.environ.get("TOKENPAIR_MONGOECO_PYTHON"):
        candidates.append(chosen)
    candidates += [p for p in map(shutil.which, ("python3.13", "python3.14")) if p]
    pyenv = Path.home() / ".pyenv" / "versions"
    if pyenv.is_dir():
        candidates += [str(v / "bin" / "python") for v in sorted(pyenv.iterdir())]
    for candidate in candidates:
        if _is_recent_python(candidate):
            return Path(candidate)
    raise ServerUnavailableError(
        "mongoeco needs Python 3.13 or later and none was found; set "
        "TOKENPAIR_MONGOECO_PYTHON to one, or TOKENPAIR_MONGODB_URL to a real "
        "MongoDB server"
    )


def _is_recent_python(executable: str) -> bool:
    try:
        probe = subprocess.run(
            [executable, "-c", "import sys; print(sys.version_info >= (3, 13))"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0 and probe.stdout.strip() == "True"


def prepare_venv() -> Path:
    """Make ``.venv-mongoeco`` hold the pinned mongoeco, reusing it if it
    does already; return its interpreter."""
    python = VENV / "bin" / "python"
    if _has_pinned_mongoeco(python):
        return python
    base = find_python()
    steps = [
        [str(base), "-m", "venv", "--clear", str(VENV)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"mongoeco[wire]=={MONGOECO_VERSION}",
        ],
    ]
    for step in steps:
        done = subprocess.run(
            step, capture_output=True, text=True, timeout=600, check=False
        )
        if done.returncode != 0:
            raise ServerUnavailableError(
                f"{' '.join(step[:4])} ... failed:\n{done.stderr[-2000:]}"
            )
    if not _has_pinned_mongoeco(python):
        raise ServerUnavailableError(f"{VENV} does not import mongoeco after install")
    return python


def _has_pinned_mongoeco(python: Path) -> bool:
    if not python.exists():
        return False
    check = (
        "import importlib.metadata as m, pymongo, mongoeco.wire; "
        "print(m.version('mongoeco'))"
    )
    try:
        probe = subprocess.run(
            [str(python), "-c", check],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0 and probe.stdout.strip() == MONGOECO_VERSION


class MongoecoServer:
    """mongoeco's wire server in a child process, on a free loopback port."""

    def __init__(self, process: subprocess.Popen[str], log: IO[str], port: int) -> None:
        self.process = process
        self.log = log
        self.port = port
        self.url = f"mongodb://127.0.0.1:{port}/?directConnection=true"

    @classmethod
    def start(cls) -> MongoecoServer:
        python = prepare_venv()
        # Port 0: the server binds a free port itself and reports it, so no
        # other process can take the port between choosing and binding it.
        # A file, not a pipe, takes the server's log: nobody reads a pipe
        # while the tests run, and a full one would stall the server.
        log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by stop()
        process = subprocess.Popen(
            [str(python), str(SERVER_SCRIPT), "--host", "127.0.0.1", "--port", "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        server = cls(process, log, 0)
        try:
            server.port = _read_port(process)
            server.url = f"mongodb://127.0.0.1:{server.port}/?directConnection=true"
            server._wait_for_ping()
        except ServerUnavailableError as exc:
            raise ServerUnavailableError(f"{exc}\n{server.stop()}") from None
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_for_ping(self) -> None:
        from pymongo import MongoClient
        from pymongo.errors import PyMongoError

        deadline = time.monotonic() + _STARTUP_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            client: MongoClient[dict[str, object]] = MongoClient(
                self.url, serverSelectionTimeoutMS=1000
            )
            try:
                client.admin.command("ping")
                return
            except PyMongoError as exc:
                last = exc
            finally:
                client.close()
            if self.process.poll() is not None:
                break
        raise ServerUnavailableError(
            f"mongoeco on port {self.port} never answered a ping: {last}"
        )

    def stop(self) -> str:
        """Stop the server; return the end of its log."""
        _terminate(self.process)
        self.log.seek(0)
        tail = self.log.read()[-2000:]
        self.log.close()
        return tail


def _read_port(process: subprocess.Popen[str]) -> int:
    """The port from the server's ``READY <port>`` line."""
    lines: list[str] = []

    def read() -> None:
        if process.stdout is not None:
            lines.append(process.stdout.readline())

    # readline() has no timeout of its own; a thread gives it one.
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(_STARTUP_TIMEOUT)
    words = lines[0].split() if lines else []
    if len(words) == 2 and words[0] == "READY" and words[1].isdigit():
        return int(words[1])
    raise ServerUnavailableError("mongoeco did not start")


def _terminate(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        # Closing stdin is the server's own signal to stop; SIGTERM backs it.
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def main(argv: list[str]) -> int:
    if argv != ["--prepare"]:
        print("usage: mongo_server.py --prepare", file=sys.stderr)
        return 2
    try:
        python = prepare_venv()
    except ServerUnavailableError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(python)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
