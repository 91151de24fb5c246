"""Redis servers for the test session: one standalone, one three-node cluster.

``TOKENPAIR_REDIS_URL`` (``redis://host:port``) and
``TOKENPAIR_REDIS_CLUSTER_URL`` (``redis+cluster://host:port[,host:port]``)
name servers to test against instead. Without them the session starts its own
``redis-server`` processes (found on ``PATH`` or in /usr/sbin, /usr/bin,
/usr/local/bin) on free loopback ports, with no persistence, in a temporary
directory, and stops them at the end. A server that cannot be had fails the
session when ``CI=true`` and skips the Redis tests otherwise.

Tests share the servers and keep apart by key prefix (:func:`unique_prefix`)
rather than by flushing, which would disturb anyone else on a named server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

__all__ = [
    "RedisServer",
    "ServerUnavailableError",
    "client_for",
    "cluster_nodes",
    "delete_prefix",
    "find_binary",
    "redis_cluster_url",
    "redis_url",
    "unique_prefix",
]

_HOST = "127.0.0.1"
_START_TIMEOUT = 20.0
_CLUSTER_SIZE = 3
_SEARCH_PATH = ("/usr/sbin", "/usr/bin", "/usr/local/bin")


class ServerUnavailableError(Exception):
    """No Redis server can be had for this session."""


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``redis://`` URL of a standalone server living as long as the session."""
    url = os.environ.get("TOKENPAIR_REDIS_URL")
    if url:
        yield url
        return
    with _servers_or_skip("standalone Redis") as servers:
        servers.append(RedisServer.start())
        yield f"redis://{_HOST}:{servers[0].port}/0"


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """``redis+cluster://`` URL of a three-primary cluster, living as long as
    the session."""
    url = os.environ.get("TOKENPAIR_REDIS_CLUSTER_URL")
    if url:
        yield url
        return
    with _servers_or_skip("Redis Cluster") as servers:
        for _ in range(_CLUSTER_SIZE):
            servers.append(RedisServer.start(cluster=True))
        _create_cluster(servers)
        nodes = ",".join(f"{_HOST}:{server.port}" for server in servers)
        yield f"redis+cluster://{nodes}"


@contextlib.contextmanager
def _servers_or_skip(what: str) -> Iterator[list[RedisServer]]:
    servers: list[RedisServer] = []
    try:
        try:
            yield servers
        except ServerUnavailableError as exc:
            message = f"no {what} server for the tests: {exc}"
            if os.environ.get("CI") == "true":
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
    finally:
        for server in servers:
            server.stop()


def find_binary(name: str) -> str:
    """The path of a Redis program, or :class:`ServerUnavailableError`."""
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SEARCH_PATH))
    if found is None:
        raise ServerUnavailableError(
            f"{name} is not installed (looked on PATH and in {', '.join(_SEARCH_PATH)})"
        )
    return found


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((_HOST, port))
        except OSError:
            return False
    return True


def _free_port(*, with_bus: bool) -> int:
    """A free loopback port; with ``with_bus``, port + 10000 (a cluster
    node's bus) is free too."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((_HOST, 0))
            port = int(probe.getsockname()[1])
        if not with_bus:
            return port
        if port + 10000 < 65536 and _port_is_free(port + 10000):
            return port
    raise ServerUnavailableError("found no free pair of loopback ports")


@dataclass
class RedisServer:
    """A ``redis-server`` process on a loopback port."""

    port: int
    process: subprocess.Popen[bytes]
    directory: tempfile.TemporaryDirectory[str]
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = Path(self.directory.name) / "redis.log"

    @classmethod
    def start(cls, *, cluster: bool = False) -> RedisServer:
        binary = find_binary("redis-server")
        port = _free_port(with_bus=cluster)
        directory = tempfile.TemporaryDirectory(prefix="tokenpair-redis-")
        args = [
            binary,
            "--port", str(port),
            "--bind", _HOST,
            "--save", "",
            "--appendonly", "no",
            "--dir", directory.name,
            "--logfile", "redis.log",
        ]  # fmt: skip
        if cluster:
            args += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000",
            ]  # fmt: skip
        try:
            process = subprocess.Popen(
                args,
                cwd=directory.name,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            directory.cleanup()
            raise ServerUnavailableError(f"could not run {binary}: {exc}") from exc
        server = cls(port, process, directory)
        try:
            server._wait_until_ready()
        except BaseException:
            server.stop()
            raise
        return server

    def client(self) -> redis.Redis:
        """A synchronous client for probes and administration."""
        return redis.Redis(host=_HOST, port=self.port, socket_timeout=5)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        with self.client() as client:
            while True:
                if self.process.poll() is not None:
                    raise ServerUnavailableError(
                        f"redis-server on port {self.port} exited with "
                        f"{self.process.returncode}: {self._output()}"
                    )
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise ServerUnavailableError(
                        f"redis-server on port {self.port} did not answer within "
                        f"{_START_TIMEOUT:g} s: {self._output()}"
                    )
                time.sleep(0.05)

    def _output(self) -> str:
        with contextlib.suppress(OSError):
            text = self.log.read_text(errors="replace").strip()
            if text:
                return text[-2000:]
        if self.process.poll() is not None and self.process.stderr is not None:
            return self.process.stderr.read().decode(errors="replace")[-2000:]
        return "(no output)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.directory.cleanup()


def _create_cluster(servers: list[RedisServer]) -> None:
    cli = find_binary("redis-cli")
    addresses = [f"{_HOST}:{server.port}" for server in servers]
    command = [cli, "--cluster", "create", *addresses]
    command += ["--cluster-replicas", "0", "--cluster-yes"]
    try:
        done = subprocess.run(
            command, capture_output=True, timeout=_START_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerUnavailableError(f"redis-cli --cluster create: {exc}") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
        raise ServerUnavailableError(f"redis-cli --cluster create failed: {output}")

    deadline = time.monotonic() + _START_TIMEOUT
    for server in servers:
        with server.client() as client:
            while True:
                state = _cluster_info(client)
                if (
                    state.get("cluster_state") == "ok"
                    and state.get("cluster_known_nodes") == str(len(servers))
                    and state.get("cluster_slots_ok") == "16384"
                ):
                    break
                if time.monotonic() > deadline:
                    raise ServerUnavailableError(
                        f"the cluster did not reach cluster_state:ok: {state}"
                    )
                time.sleep(0.05)


def _cluster_info(client: redis.Redis) -> dict[str, str]:
    info = client.cluster("INFO")
    if isinstance(info, dict):
        return {_str(name): _str(value) for name, value in info.items()}
    text = _str(info)
    return dict(line.split(":", 1) for line in text.split() if ":" in line)


def _str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- helpers for tests ----------------------------------------------------


def unique_prefix() -> str:
    """A key prefix no other test uses."""
    return f"tokenpair-test:{uuid.uuid4().hex[:12]}:"


def cluster_nodes(url: str) -> list[tuple[str, int]]:
    """The ``(host, port)`` pairs a ``redis+cluster://`` URL names."""
    netloc = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    nodes = []
    for item in netloc.rpartition("@")[2].split(","):
        host, _, port = item.rpartition(":")
        nodes.append((host.strip("[]"), int(port)))
    return nodes


def client_for(url: str) -> Redis | RedisCluster:
    """An asyncio client for a test server URL, for the caller to close."""
    if url.startswith(("redis+cluster://", "rediss+cluster://")):
        return RedisCluster(
            startup_nodes=[
                ClusterNode(host, port) for host, port in cluster_nodes(url)
            ],
            ssl=url.startswith("rediss"),
        )
    return Redis.from_url(url)


async def delete_prefix(client: Redis | RedisCluster, prefix: str) -> None:
    """Delete every key under ``prefix``, on every primary of a cluster."""
    pattern = "".join("\\" + c if c in "\\*?[]" else c for c in prefix) + "*"
    keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
    for key in keys:
        await client.unlink(key)
