"""``python -m benchmarks``: options, finding the stores, writing results."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import os
import secrets
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tokenpair import ConfigurationError, TokenPairError

from ._backends import (
    Backend,
    MemoryBackend,
    MongoBackend,
    RedisBackend,
    SQLiteBackend,
    mongo_driver_url,
    redact_url,
    run_id,
    sqlite_files,
)
from ._display import make_display, render_markdown, render_summary
from ._run import Config, run
from ._targets import evaluate

__all__ = ["main"]

STORES = ("memory", "sqlite", "redis", "mongodb")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_MONGODB_URL = "mongodb://127.0.0.1:27017/"
_PROBE_SECONDS = 2.0
#: The shortest slice of a round worth timing: below it most jobs finish
#: their warm-up and nothing else.
MIN_SLICE_SECONDS = 0.01
#: The server error code for a failed login.
_MONGODB_AUTHENTICATION_FAILED = 18


def _positive_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError("give one or more integers >= 1")
    return tuple(dict.fromkeys(values))


def _store_list(text: str) -> tuple[str, ...]:
    names = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in STORES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"stores are a comma-separated subset of {', '.join(STORES)}"
        )
    return tuple(dict.fromkeys(names))


#: Far above any machine's CPU count (Linux allows 8192), and low enough
#: that a mistyped range is refused before it is spelled out.
_HIGHEST_CPU = 65_535


def _cpu_list(text: str) -> set[int]:
    """CPU numbers and ranges, as taskset takes them: ``0``, ``0,2``,
    ``0-3,8``."""
    cpus: set[int] = set()
    for part in (part.strip() for part in text.split(",")):
        if not part:
            continue
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            message = f"not a list of CPU numbers or ranges: {text!r}"
            raise argparse.ArgumentTypeError(message) from None
        if first < 0 or last < first:
            message = f"CPU numbers are >= 0 and a range goes upwards: {part!r}"
            raise argparse.ArgumentTypeError(message)
        if last > _HIGHEST_CPU:
            message = f"CPU numbers go up to {_HIGHEST_CPU}: {part!r}"
            raise argparse.ArgumentTypeError(message)
        cpus.update(range(first, last + 1))
    if not cpus:
        raise argparse.ArgumentTypeError("give CPU numbers >= 0")
    return cpus


def _url(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("give a URL, or leave the option out")
    return text


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError("give a number of seconds > 0")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Throughput, latency, round trips and storage of tokenpair's "
        "stores, each figure next to a floor measured in the same run.",
    )
    parser.add_argument(
        "--stores",
        type=_store_list,
        help="comma-separated subset of memory,sqlite,redis,mongodb (default: "
        "memory, sqlite and every server that answers)",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_list,
        default=(1, 64),
        help="tasks running each operation at once, comma-separated (default 1,64)",
    )
    parser.add_argument(
        "--duration",
        type=_positive_float,
        default=5.0,
        help="seconds per operation and concurrency level (default 5)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="interleaved rounds the duration is split into (default: about "
        "one per second)",
    )
    parser.add_argument(
        "--families",
        type=int,
        default=10_000,
        help="families issued to measure storage per family (default 10000; "
        "0 skips it)",
    )
    parser.add_argument(
        "--race",
        type=int,
        default=100,
        help="concurrent refreshes of one token in the race check (default 100)",
    )
    parser.add_argument(
        "--cpus",
        type=_cpu_list,
        help="pin the benchmark (its event loop and driver threads) to these "
        "CPUs, e.g. 0, 0,1 or 0-3 (Linux)",
    )
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    parser.add_argument("--plot", type=Path, help="write a PNG chart")
    parser.add_argument(
        "--markdown", type=Path, help="write the result tables as Markdown"
    )
    parser.add_argument(
        "--redis-url",
        type=_url,
        help=f"Redis store URL (default $TOKENPAIR_REDIS_URL or {DEFAULT_REDIS_URL})",
    )
    parser.add_argument(
        "--mongodb-url",
        type=_url,
        help=f"MongoDB URL (default $TOKENPAIR_MONGODB_URL or {DEFAULT_MONGODB_URL})",
    )
    parser.add_argument(
        "--sqlite-path",
        help="SQLite file to create and remove (default: a temporary directory)",
    )
    return parser


def _refused_credentials(url: str) -> str:
    # In the benchmark's own words: the URL holds the password, and Redis
    # answers a missing one with a paragraph about HELLO.
    try:
        has_credentials = bool(urlsplit(url).netloc.rpartition("@")[1])
    except ValueError:
        has_credentials = "@" in url
    if has_credentials:
        return "the server refused the credentials in the URL"
    return "the server wants credentials and the URL gives none"


async def _probe_redis(url: str) -> str | None:
    """Why the Redis store cannot be used, or ``None`` if it answers."""
    try:
        from redis.exceptions import AuthenticationError, ResponseError

        from tokenpair_redis import store_from_url
    except ImportError as exc:
        return f"the redis extra is missing ({exc.name})"
    try:
        # The adapter's own parser, so that a URL of another store is named
        # as such rather than opened as that store.
        store = store_from_url(url)
    except ConfigurationError as exc:
        return str(exc)

    try:
        async with asyncio.timeout(_PROBE_SECONDS):
            await store.client.ping()
    except AuthenticationError:
        return _refused_credentials(url)
    except ResponseError as exc:
        # The server answered, with an error of its own (a database number
        # it does not have, say); its words hold nothing of the URL's.
        return f"the server refused the connection: {exc}"
    except Exception as exc:
        return f"no answer to PING within {_PROBE_SECONDS:g} s ({type(exc).__name__})"
    finally:
        # A probe's client failing to close changes nothing about the run.
        with contextlib.suppress(Exception):
            await store.aclose()
    return None


async def _probe_mongodb(url: str) -> str | None:
    """Why the MongoDB store cannot be used, or ``None`` if it answers."""
    try:
        from pymongo import AsyncMongoClient
        from pymongo.errors import OperationFailure

        from tokenpair_mongodb import store_from_url
    except ImportError as exc:
        return f"the mongodb extra is missing ({exc.name})"
    # The store's own check of the URL first: PyMongo would only warn about
    # an option it does not know, and then ignore it.
    try:
        await store_from_url(url).aclose()
    except ConfigurationError as exc:
        return str(exc)
    client: Any = AsyncMongoClient(
        mongo_driver_url(url), serverSelectionTimeoutMS=int(_PROBE_SECONDS * 1000)
    )
    try:
        await client.admin.command("ping")
    except OperationFailure as exc:
        if exc.code == _MONGODB_AUTHENTICATION_FAILED:
            return _refused_credentials(url)
        name = (exc.details or {}).get("codeName") or exc.code
        return "the server refused ping" + (f" ({name})" if name else "")
    except Exception as exc:
        return f"no answer to ping within {_PROBE_SECONDS:g} s ({type(exc).__name__})"
    finally:
        await client.close()
    return None


async def _choose(
    args: argparse.Namespace, secret: bytes, run: str
) -> tuple[list[Backend], list[str], list[str]]:
    """The backends to run, what was skipped and why, and fatal problems.

    A store is skipped when it cannot be reached only if nobody asked for
    it: naming it in ``--stores``, or giving its URL on the command line,
    makes it a failure."""
    explicit = args.stores is not None
    asked = {
        "redis": args.redis_url is not None,
        "mongodb": args.mongodb_url is not None,
    }
    wanted = args.stores or STORES
    redis_url = args.redis_url or os.environ.get("TOKENPAIR_REDIS_URL")
    mongodb_url = args.mongodb_url or os.environ.get("TOKENPAIR_MONGODB_URL")
    backends: list[Backend] = []
    skipped: list[str] = []
    errors: list[str] = []
    for name in wanted:
        problem: str | None = None
        if name == "memory":
            backends.append(MemoryBackend(secret, run))
            continue
        if name == "sqlite":
            try:
                import tokenpair_sqlite  # noqa: F401
            except ImportError as exc:
                problem = f"the sqlite extra is missing ({exc.name})"
            else:
                backends.append(SQLiteBackend(secret, run, args.sqlite_path))
                continue
        elif name == "redis":
            url = redis_url or DEFAULT_REDIS_URL
            problem = await _probe_redis(url)
            if problem is None:
                backends.append(RedisBackend(secret, run, url))
                continue
            problem += f" (at {redact_url(url)})"
        elif name == "mongodb":
            url = mongodb_url or DEFAULT_MONGODB_URL
            problem = await _probe_mongodb(url)
            if problem is None:
                backends.append(MongoBackend(secret, run, url))
                continue
            problem += f" (at {redact_url(url)})"
        failed = explicit or asked.get(name, False)
        (errors if failed else skipped).append(f"{name}: {problem}")
    return backends, skipped, errors


def _finite(value: Any) -> Any:
    """NaN (an operation with no calls) as null, which JSON can hold."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


class _Stop:
    """Stops the run on Ctrl-C or SIGTERM, so that the keys, files and
    collections it made on shared servers are removed either way.

    A stop cancels the run's task, and cancels it again every
    ``_RESTOP_SECONDS`` until the task ends: on Python 3.11,
    ``asyncio.wait_for`` (which redis-py wraps around every socket write)
    drops a cancellation that arrives just as the write completes. While the
    run removes what it made, inside :meth:`uninterrupted`, the cancellation
    waits. A second signal cancels at once, clean-up or not.

    The handlers are the process's own rather than the event loop's, which
    would put the default ones back when the loop closes: a second signal
    arriving then would kill the process instead of letting it report.
    """

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._early: signal.Signals | None = None
        self._holding = 0
        self._forced = False

    def install(self) -> None:
        """Take over SIGINT and SIGTERM for the rest of the process."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        loop = self._loop
        if loop is None:
            self._early = self._early or signal.Signals(signum)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._request, signal.Signals(signum))
        # Once the loop has closed the run is over: nothing is left to stop.

    def watch(self, task: asyncio.Task[Any]) -> None:
        self._task = task
        self._loop = task.get_loop()
        if self._early is not None:
            self._request(self._early)

    def _request(self, signum: signal.Signals) -> None:
        if self.signal is not None:
            self._forced = True
            if self._task is not None:
                self._task.cancel()
            return
        self.signal = signum
        self._cancel()

    def _cancel(self) -> None:
        task = self._task
        if task is None or task.done():
            return
        if self._forced or not self._holding:
            task.cancel()
        task.get_loop().call_later(_RESTOP_SECONDS, self._cancel)

    @contextlib.contextmanager
    def uninterrupted(self) -> Iterator[None]:
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1


#: How often a stop request is repeated until the run ends.
_RESTOP_SECONDS = 0.2


def _rounds(args: argparse.Namespace) -> int:
    """The rounds each job's duration is split into: as given, or about one
    a second."""
    rounds: int = args.rounds or max(1, round(args.duration))
    return rounds


async def _main(args: argparse.Namespace, stop: _Stop) -> int:
    task = asyncio.current_task()
    if task is not None:
        stop.watch(task)
    secret = secrets.token_bytes(32)
    backends, skipped, errors = await _choose(args, secret, run_id())
    if errors:
        for error in errors:
            print(f"cannot benchmark {error}", file=sys.stderr)
        return 1
    config = Config(
        concurrency=args.concurrency,
        duration=args.duration,
        rounds=_rounds(args),
        families=args.families,
        race=args.race,
    )
    display = make_display()
    for reason in skipped:
        display.note(f"skipping {reason}")
    try:
        report = await run(config, secret, backends, display, stop.uninterrupted)
    finally:
        display.stop()
    report["skipped"] = skipped
    if hasattr(os, "sched_getaffinity"):
        report["settings"]["cpu_affinity"] = sorted(os.sched_getaffinity(0))
    report["targets"] = evaluate(report)
    report = _finite(report)
    render_summary(report)
    return _write_results(args, report)


def _write_results(args: argparse.Namespace, report: dict[str, Any]) -> int:
    """Write the files asked for, naming each that cannot be written."""
    writers: list[tuple[Path, Callable[[Path], object]]] = []
    if args.json is not None:
        text = json.dumps(report, indent=2, allow_nan=False) + "\n"
        writers.append((args.json, lambda path: path.write_text(text)))
    if args.markdown is not None:
        markdown = render_markdown(report)
        writers.append((args.markdown, lambda path: path.write_text(markdown)))
    if args.plot is not None:
        from ._plot import plot

        writers.append((args.plot, lambda path: plot(report, path)))
    failed = False
    for path, write in writers:
        # Every file is tried: one that cannot be written loses no other.
        try:
            write(path)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            print(f"cannot write {path}: {reason}", file=sys.stderr)
            failed = True
        else:
            print(f"wrote {path}")
    return 1 if failed else 0


def _cpu_ranges(cpus: Iterable[int]) -> str:
    """``0-15,32`` rather than every number: a large machine has hundreds."""
    ranges: list[list[int]] = []
    for cpu in sorted(cpus):
        if ranges and cpu == ranges[-1][1] + 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ",".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)


def _directory_problem(path: Path) -> str | None:
    """Why no file can be created at ``path``, or ``None``."""
    directory = path.absolute().parent
    if not directory.exists():
        return f"the directory {directory} does not exist"
    if not directory.is_dir():
        return f"{directory} is not a directory"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"cannot create files in {directory}"
    return None


def _identity(path: Path) -> object:
    """What names one file however it is spelled: its device and inode if it
    exists (hard links included), else its resolved path."""
    try:
        status = path.stat()
    except OSError:
        return path.resolve()
    return (status.st_dev, status.st_ino)


def _output_problem(path: Path) -> str | None:
    """Why a result file cannot be written, found before the run rather than
    after it."""
    if path.is_dir():
        return f"{path} is a directory"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} is not writable"
    return _directory_problem(path)


def _sqlite_problem(given: str, *, footprint: bool) -> str | None:
    """Why ``--sqlite-path`` cannot be used, or ``None``. The run deletes
    its files at the end, so none may exist before it: that would either
    fail the run half way or delete someone's data."""
    problem = _directory_problem(Path(given))
    if problem is not None:
        return problem
    for path in sqlite_files(given, footprint=footprint):
        if os.path.lexists(path):
            return (
                f"{path} exists; the benchmark creates its SQLite files afresh "
                "and deletes them afterwards"
            )
    return None


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse what would otherwise fail part way through the run, or after
    it."""
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    rounds = _rounds(args)
    if args.duration / rounds < MIN_SLICE_SECONDS:
        parser.error(
            f"--duration {args.duration:g} in {rounds} round(s) leaves each job "
            f"{args.duration / rounds:.3g} s a round; at least "
            f"{MIN_SLICE_SECONDS:g} s is needed to measure anything"
        )
    if args.race < 2:
        parser.error("--race must be at least 2: one refresh wins, the rest must lose")
    if args.families < 0:
        parser.error("--families must be 0 or more (0 skips the storage measurement)")
    outputs: dict[object, str] = {}
    for option in ("json", "markdown", "plot"):
        path = getattr(args, option)
        if path is None:
            continue
        if problem := _output_problem(path):
            parser.error(f"--{option}: {problem}")
        # One file given twice would end up holding whichever came last.
        same = outputs.setdefault(_identity(path), option)
        if same != option:
            parser.error(f"--{same} and --{option} name the same file: {path}")
    if args.plot is not None and args.plot.suffix.lower() != ".png":
        parser.error("--plot writes a PNG chart: give a path ending in .png")
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        parser.error("--plot needs matplotlib: pip install 'tokenpair[bench]'")
    if args.sqlite_path is not None and not args.sqlite_path.strip():
        parser.error("--sqlite-path: give a file name, or leave the option out")
    sqlite_wanted = args.stores is None or "sqlite" in args.stores
    if args.sqlite_path is not None and sqlite_wanted:
        problem = _sqlite_problem(args.sqlite_path, footprint=args.families > 0)
        if problem:
            parser.error(f"--sqlite-path: {problem}")
    if args.cpus is not None:
        if not hasattr(os, "sched_setaffinity"):
            parser.error("--cpus needs Linux")
        # The kernel would drop CPUs outside this set without a word, or
        # refuse the whole set when none is left.
        usable = os.sched_getaffinity(0)
        if unusable := args.cpus - usable:
            parser.error(
                f"--cpus: this process may not run on CPU {_cpu_ranges(unusable)}; "
                f"it may use {_cpu_ranges(usable)}"
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    if args.cpus is not None:
        # Before any thread starts, so that driver threads inherit it.
        os.sched_setaffinity(0, args.cpus)
    stop = _Stop()
    stop.install()
    try:
        return asyncio.run(_main(args, stop))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        return 128 + (stop.signal or signal.SIGINT)
    except Exception as exc:
        # A server that goes away mid-run fails every task that was talking
        # to it; one line says so better than a traceback per task. Anything
        # else is a fault of the benchmark and keeps its traceback.
        errors = _leaves(exc)
        if not all(_is_server_error(error) for error in errors):
            raise
        described = dict.fromkeys(
            f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            for error in errors
        )
        print(f"the run stopped: {'; '.join(described)}", file=sys.stderr)
        return 1


def _leaves(exc: BaseException) -> list[BaseException]:
    """The errors inside (possibly nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _is_server_error(error: BaseException) -> bool:
    """An error of a store or its driver rather than of the benchmark."""
    if isinstance(error, TokenPairError | OSError | TimeoutError):
        return True
    module = type(error).__module__.split(".")[0]
    return module in {"redis", "pymongo", "aiosqlite", "sqlite3", "bson"}
