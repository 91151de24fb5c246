"""``python -m benchmarks`` runs end to end and reports every figure it
promises. A fraction of a second per operation: this checks the benchmark,
never the speed of anything."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
OPERATIONS = ("issue", "refresh", "verify", "authenticate", "revoke")
LEVELS = (1, 4)
RACE = 100


def run_benchmark(tmp_path: Path, stores: str, *options: str) -> dict[str, Any]:
    output = tmp_path / "bench.json"
    completed = bench(
        "--stores",
        stores,
        "--concurrency",
        ",".join(map(str, LEVELS)),
        "--duration",
        "0.05",
        "--families",
        "200",
        "--race",
        str(RACE),
        "--json",
        str(output),
        *options,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report: dict[str, Any] = json.loads(output.read_text())
    return report


def bench(*options: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """``python -m benchmarks`` with these options, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def rows(report: dict[str, Any], kind: str) -> dict[tuple[str, str, int], Any]:
    return {
        (row["store"], row["operation"], row["concurrency"]): row
        for row in report["results"]
        if row["kind"] == kind
    }


def check_store(report: dict[str, Any], store: str) -> None:
    ours = rows(report, "ours")
    for operation in OPERATIONS:
        for level in LEVELS:
            row = ours[(store, operation, level)]
            assert row["throughput"] > 0, row
            assert row["p50_us"] > 0, row
            assert row["p99_us"] >= row["p50_us"], row
            assert row["floor"] in row["ratios"], row
            assert row["ratio"] is not None, row
            assert row["ratio"] > 0, row
            assert all(value is not None for value in row["ratios"].values()), row
    floors = rows(report, "floor")
    for (floor_store, name, level), row in floors.items():
        if floor_store == store:
            assert row["throughput"] > 0, (name, level)
    for level in LEVELS:
        # The store's own rotation is measured and set against refresh.
        assert floors[(store, "rotate", level)]["ops"] > 0
        assert ours[(store, "refresh", level)]["ratios"]["rotate"] > 0

    counted = report["round_trips"][store]
    assert counted["refresh"]["store_calls"] == {"rotate": 1}
    assert counted["issue"]["store_calls"]["create_family"] == 1
    assert counted["verify"]["store_calls"] == {}

    race = report["race"]["ours"][store]
    assert race["reuse_grace_0"]["accepted"] == 1
    assert sum(race["reuse_grace_0"]["refused"].values()) == RACE - 1
    assert race["reuse_grace_default"]["usable_successors"] == 1

    footprint = report["footprint"][store]
    assert footprint["families"] == 200
    assert footprint["bytes_per_family_issued"] > 0
    assert footprint["bytes_per_family_rotated"] > 0
    assert report["servers"][store]


def check_environment(report: dict[str, Any]) -> None:
    environment = report["environment"]
    assert environment["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert environment["packages"]["joserfc"]
    assert environment["machine"]["logical_cores"]
    assert report["targets"]


def test_memory_and_sqlite(tmp_path: Path) -> None:
    """Both in-process stores, every figure, and the chart."""
    chart = tmp_path / "bench.png"
    database = tmp_path / "bench.db"

    report = run_benchmark(
        tmp_path,
        "memory,sqlite",
        "--plot",
        str(chart),
        "--sqlite-path",
        str(database),
    )

    assert report["stores"] == ["memory", "sqlite"]
    check_environment(report)
    check_store(report, "memory")
    check_store(report, "sqlite")
    assert report["servers"]["sqlite"]["version"]
    assert report["round_trips"]["sqlite"]["refresh"]["statements"]
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert not list(tmp_path.glob("bench*.db*")), "the run leaves no database"


def test_redis_with_the_hand_rolled_peer(tmp_path: Path, redis_url: str) -> None:
    """Redis adds server commands, its floors and the hand-rolled peer."""
    report = run_benchmark(tmp_path, "redis", "--redis-url", redis_url)

    check_environment(report)
    check_store(report, "redis")
    assert report["servers"]["redis"]["version"]
    counted = report["round_trips"]["redis"]
    assert counted["refresh"]["round_trips"]
    assert counted["refresh"]["server_commands"]
    assert counted["floor:write"]["round_trips"] == {"EVALSHA": 1}
    peer = rows(report, "peer")
    for operation in OPERATIONS:
        for level in LEVELS:
            row = peer[("redis", operation, level)]
            assert row["throughput"] > 0, row
            assert row["ours_vs_peer_throughput"] is not None, row
    assert 1 <= report["race"]["peer"]["accepted"] <= RACE


def test_a_cluster_beyond_its_connection_limit(
    tmp_path: Path, redis_cluster_url: str
) -> None:
    """With one connection allowed per call, the 100 refreshes of the race,
    the floors and the hand-rolled peer queue for the store's permits where
    redis-py's cluster client would fail for want of a connection."""
    url = f"{redis_cluster_url}?max_connections=1"
    report = run_benchmark(tmp_path, "redis", "--redis-url", url, "--families", "0")

    ours = rows(report, "ours")
    peer = rows(report, "peer")
    for operation in OPERATIONS:
        for level in LEVELS:
            assert ours[("redis", operation, level)]["throughput"] > 0
            assert peer[("redis", operation, level)]["throughput"] > 0
    assert report["race"]["ours"]["redis"]["reuse_grace_0"]["accepted"] == 1
    assert report["race"]["peer"]["accepted"] >= 1
    uncounted = [note for note in report["notes"] if "not counted" in note]
    assert len(uncounted) == 1, report["notes"]


def test_mongodb(tmp_path: Path, mongodb_url: str) -> None:
    """MongoDB adds commands counted by a PyMongo listener."""
    report = run_benchmark(tmp_path, "mongodb", "--mongodb-url", mongodb_url)

    check_environment(report)
    check_store(report, "mongodb")
    assert report["round_trips"]["mongodb"]["refresh"]["round_trips"]


def test_a_store_asked_for_but_unreachable_fails_the_run(tmp_path: Path) -> None:
    """Naming a store that does not answer is an error, not a silent skip."""
    completed = bench(
        "--stores",
        "redis",
        "--redis-url",
        "redis://127.0.0.1:1/0",
        "--json",
        str(tmp_path / "bench.json"),
        timeout=60,
    )

    assert completed.returncode == 1
    assert "cannot benchmark redis" in completed.stderr
    assert not (tmp_path / "bench.json").exists()


def test_passwords_in_urls_stay_out_of_the_json(tmp_path: Path) -> None:
    """The command line is recorded with the passwords of its URLs masked;
    a store not asked for is not contacted."""
    report = run_benchmark(
        tmp_path,
        "memory",
        "--redis-url",
        "redis://:made-up-redis-pw@127.0.0.1:1/0",
        "--mongodb-url=mongodb://someone:made-up-mongo-pw@127.0.0.1:1/"
        "?tlsCertificateKeyFilePassword=made-up-key-pw",
    )

    written = (tmp_path / "bench.json").read_text()
    for password in ("redis", "mongo", "key"):
        assert f"made-up-{password}-pw" not in written
    argv = report["environment"]["argv"]
    assert "redis://:***@127.0.0.1:1/0" in argv
    assert (
        "--mongodb-url=mongodb://someone:***@127.0.0.1:1/"
        "?tlsCertificateKeyFilePassword=***"
    ) in argv


def test_a_sqlite_path_is_taken_as_it_is_written(tmp_path: Path) -> None:
    """A '%41' in the name is not read as an escaped 'A': the file next to
    it, which the check before the run never saw, is left alone."""
    neighbour = tmp_path / "benchA.db"
    connection = sqlite3.connect(neighbour)
    connection.execute("CREATE TABLE precious (x)")
    connection.commit()
    connection.close()

    run_benchmark(tmp_path, "sqlite", "--sqlite-path", str(tmp_path / "bench%41.db"))

    connection = sqlite3.connect(neighbour)
    tables = connection.execute("SELECT name FROM sqlite_master").fetchall()
    connection.close()
    assert tables == [("precious",)]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "bench.json",
        "benchA.db",
    ]


def test_sigterm_cleans_up_like_ctrl_c(tmp_path: Path) -> None:
    """Stopped part way, a run still removes the files it made."""
    database = tmp_path / "bench.db"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--stores",
            "sqlite",
            "--duration",
            "30",
            "--families",
            "0",
            "--sqlite-path",
            str(database),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not database.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert database.exists(), "the run never created its database"
        time.sleep(1)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM
    assert "interrupted" in stderr
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


def upset_when(
    options: list[str],
    line: str,
    upset: Callable[[subprocess.Popen[str]], object],
    timeout: float = 60,
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Start a long run, call ``upset`` with it as soon as it prints
    ``line``, and return how it ended and how long it took to end after."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks", "--duration", "30", *options],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    output: list[str] = []
    try:
        assert process.stdout is not None
        for printed in process.stdout:
            output.append(printed)
            if line in printed:
                break
        else:
            pytest.fail("the run never printed " + repr(line) + ": " + "".join(output))
        upset_at = time.monotonic()
        upset(process)
        stdout, stderr = process.communicate(timeout=timeout)
        took = time.monotonic() - upset_at
    finally:
        process.kill()
    completed = subprocess.CompletedProcess(
        process.args, process.returncode, "".join(output) + stdout, stderr
    )
    return completed, took


def bench_keys(redis_url: str) -> list[bytes]:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return list(client.scan_iter(match="tokenpair-bench:*", count=1000))
    finally:
        client.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_during_direct_redis_calls_is_not_lost(
    redis_url: str, signum: int
) -> None:
    """The counting pass awaits redis-py without a task group around it,
    where Python 3.11's wait_for can drop a cancellation: the stop is
    repeated until it takes, and the keys are still removed."""
    completed, took = upset_when(
        ["--stores", "redis", "--redis-url", redis_url, "--families", "0"],
        "redis: counting round trips",
        lambda process: process.send_signal(signum),
    )

    assert completed.returncode == 128 + signum, completed.stderr
    assert took < 20, f"the run took {took:.1f} s to stop"
    assert "interrupted" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert bench_keys(redis_url) == []


def test_a_server_lost_mid_run_ends_it_in_one_line(tmp_path: Path) -> None:
    from tests.support.redis_servers import RedisServer

    server = RedisServer.start()
    url = f"redis://127.0.0.1:{server.port}/0"

    def lose_server(process: subprocess.Popen[str]) -> None:
        time.sleep(1)
        server.stop()

    try:
        completed, _ = upset_when(
            ["--stores", "redis", "--redis-url", url, "--families", "0"],
            "redis · c=1",
            lose_server,
            timeout=90,
        )
    finally:
        server.stop()

    stderr = completed.stderr
    assert completed.returncode == 1, stderr
    assert "the run stopped: " in stderr
    assert "Traceback" not in stderr


def test_refused_credentials_are_named(tmp_path: Path, redis_url: str) -> None:
    host = urlsplit(redis_url).netloc.rpartition("@")[2]
    url = urlsplit(redis_url)._replace(netloc=f"no-such-user:made-up-pw@{host}")

    completed = refuse(tmp_path, "--stores", "redis", "--redis-url", url.geturl())

    assert completed.returncode == 1
    assert "cannot benchmark redis: the server refused the credentials" in (
        completed.stderr
    )
    assert "made-up-pw" not in completed.stderr


def test_a_mongodb_url_option_unknown_to_the_store_is_refused(tmp_path: Path) -> None:
    """The store's own URL check, rather than the driver's warning."""
    pytest.importorskip("tokenpair_mongodb")
    url = "mongodb://127.0.0.1:1/?no_such_option=1"

    completed = refuse(tmp_path, "--stores", "mongodb", "--mongodb-url", url)

    assert completed.returncode == 1
    assert "cannot benchmark mongodb: the MongoDB store URL is not valid" in (
        completed.stderr
    )
    assert "UserWarning:" not in completed.stderr


def refuse(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Run with default durations, which would take minutes: a refusal has
    to come before any store is measured."""
    completed = bench("--json", str(tmp_path / "bench.json"), *options, timeout=30)
    assert "Traceback" not in completed.stderr, completed.stderr
    assert not (tmp_path / "bench.json").exists()
    return completed


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        ("bench.db", "bench.db exists"),
        ("bench-footprint.db", "bench-footprint.db exists"),
        ("bench.db-wal", "bench.db-wal exists"),
    ],
)
def test_sqlite_files_in_the_way_are_refused(
    tmp_path: Path, existing: str, expected: str
) -> None:
    (tmp_path / existing).write_text("someone's data")
    database = tmp_path / "bench.db"

    completed = refuse(
        tmp_path, "--stores", "memory,sqlite", "--sqlite-path", str(database)
    )

    assert completed.returncode == 2
    assert f"--sqlite-path: {tmp_path / expected}" in completed.stderr
    assert (tmp_path / existing).read_text() == "someone's data"


def test_a_sqlite_path_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "missing" / "bench.db"

    completed = refuse(tmp_path, "--stores", "sqlite", "--sqlite-path", str(database))

    assert completed.returncode == 2
    assert "--sqlite-path: the directory" in completed.stderr
    assert "does not exist" in completed.stderr


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux's"
)
def test_cpus_this_process_may_not_use_are_refused(tmp_path: Path) -> None:
    usable = os.sched_getaffinity(0)
    cpus = f"{min(usable)},{max(usable) + 1}"

    completed = refuse(tmp_path, "--stores", "memory", "--cpus", cpus)

    assert completed.returncode == 2
    assert f"may not run on CPU {max(usable) + 1}" in completed.stderr


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux's"
)
def test_cpus_may_be_given_as_ranges(tmp_path: Path) -> None:
    usable = sorted(os.sched_getaffinity(0))
    cpus = f"{usable[0]}-{usable[0]}"

    report = run_benchmark(tmp_path, "memory", "--families", "0", "--cpus", cpus)

    assert report["settings"]["cpu_affinity"] == [usable[0]]


def test_one_file_for_two_outputs_is_refused(tmp_path: Path) -> None:
    same = str(tmp_path / "results.png")

    completed = refuse(
        tmp_path, "--stores", "memory", "--markdown", same, "--plot", same
    )

    assert completed.returncode == 2
    assert "--markdown and --plot name the same file" in completed.stderr


def test_a_hard_link_between_two_outputs_is_refused(tmp_path: Path) -> None:
    first = tmp_path / "results.json"
    first.touch()
    second = tmp_path / "results.md"
    os.link(first, second)

    completed = refuse(
        tmp_path, "--stores", "memory", "--json", str(first), "--markdown", str(second)
    )

    assert completed.returncode == 2
    assert "--json and --markdown name the same file" in completed.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_an_output_that_cannot_be_written_loses_no_other(tmp_path: Path) -> None:
    markdown = tmp_path / "tables.md"
    completed = bench(
        "--stores",
        "memory",
        "--duration",
        "0.05",
        "--families",
        "0",
        "--race",
        "2",
        "--json",
        "/dev/full",
        "--markdown",
        str(markdown),
    )

    assert completed.returncode == 1
    assert "cannot write /dev/full: No space left on device" in completed.stderr
    assert markdown.read_text().startswith("### Operations")


def test_a_server_error_reply_is_quoted(tmp_path: Path, redis_url: str) -> None:
    url = urlsplit(redis_url)._replace(path="/9999").geturl()

    completed = refuse(tmp_path, "--stores", "redis", "--redis-url", url)

    assert completed.returncode == 1
    assert "the server refused the connection: " in completed.stderr
    assert "out of range" in completed.stderr


def test_a_url_given_without_stores_must_answer(tmp_path: Path) -> None:
    """Giving a store's URL asks for that store, even without --stores."""
    completed = refuse(
        tmp_path,
        "--redis-url",
        "redis://:made-up-pw@127.0.0.1:1/0",
        "--mongodb-url",
        "mongodb://127.0.0.1:1/",
    )

    assert completed.returncode == 1
    assert "cannot benchmark redis: " in completed.stderr
    assert "(at redis://:***@127.0.0.1:1/0)" in completed.stderr
    assert "cannot benchmark mongodb: " in completed.stderr
    assert "made-up-pw" not in completed.stderr


def test_a_url_of_another_store_is_refused_as_such(tmp_path: Path) -> None:
    url = "mongodb://127.0.0.1:1/"

    completed = refuse(tmp_path, "--stores", "redis", "--redis-url", url)

    assert completed.returncode == 1
    assert "cannot benchmark redis: a Redis store URL starts with redis://" in (
        completed.stderr
    )


@pytest.mark.parametrize(
    ("option", "where", "expected"),
    [
        ("--json", "missing/bench.json", "does not exist"),
        ("--markdown", "missing/bench.md", "does not exist"),
        ("--plot", "missing/bench.png", "does not exist"),
        ("--json", ".", "is a directory"),
        ("--markdown", ".", "is a directory"),
        ("--plot", ".", "is a directory"),
    ],
)
def test_result_files_that_cannot_be_written_are_refused(
    tmp_path: Path, option: str, where: str, expected: str
) -> None:
    target = tmp_path / "out" / where
    (tmp_path / "out").mkdir()

    completed = refuse(tmp_path, "--stores", "memory", option, str(target))

    assert completed.returncode == 2
    assert f"{option}: " in completed.stderr
    assert expected in completed.stderr


@pytest.mark.parametrize(
    "options",
    [
        ["--concurrency", "0"],
        ["--duration", "-1"],
        ["--stores", "oracle"],
        ["--race", "1"],
        ["--families", "-1"],
        ["--duration", "1e-9"],
        ["--duration", "0.5", "--rounds", "100000"],
        ["--plot", "chart.xyz"],
        ["--cpus", "1-0"],
        ["--cpus", "0-x"],
        ["--redis-url", ""],
        ["--mongodb-url", " "],
        ["--cpus", "0-99999999999"],
        ["--sqlite-path", ""],
    ],
)
def test_bad_options_are_refused(options: list[str]) -> None:
    completed = bench(*options, timeout=60)

    assert completed.returncode == 2
    assert "usage:" in completed.stderr
