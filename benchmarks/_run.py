"""One benchmark run: every store, every operation, every concurrency level.

For each store the operations, their floors and (on Redis) the hand-rolled
peer form one group. At each concurrency level the group runs in rounds: in
every round each job gets its slice of the duration, so that an operation and
the floor it is compared with are measured minutes apart at most, interleaved,
and a burst of load from elsewhere on the machine hits both alike.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

from tokenpair import RefreshTokenError, Token, TokenPairManager

from ._backends import Backend, RedisBackend
from ._counting import CountingStore
from ._env import environment, load_average
from ._floors import CpuFloors
from ._harness import Job, Measurement, run_slice
from ._workloads import (
    OPERATIONS,
    HandRolledPeer,
    OurWorkload,
    PeerRefusedError,
    PeerWorkload,
    floor_jobs,
    floors_for,
)

__all__ = ["Config", "Display", "run", "planned_slices"]

#: Untimed calls before each job's first slice at a concurrency level.
_WARMUP_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class Config:
    concurrency: tuple[int, ...]
    duration: float
    rounds: int
    families: int
    race: int
    count_calls: int = 20


class Display(Protocol):
    def start(self, total: int) -> None: ...

    def step(self, text: str) -> None: ...

    def advance(self) -> None: ...

    def note(self, text: str) -> None: ...

    def group_done(self, rows: list[dict[str, Any]]) -> None: ...

    def stop(self) -> None: ...


def planned_slices(backend_names: list[str], config: Config) -> int:
    """How many timed slices a run will take, for the progress bar."""
    jobs = 0
    for name in backend_names:
        jobs += len(OPERATIONS) + (4 if name == "memory" else 7)
        if name == "redis":
            jobs += len(OPERATIONS)
    return jobs * len(config.concurrency) * config.rounds


async def run(
    config: Config,
    secret: bytes,
    backends: list[Backend],
    display: Display,
    uninterrupted: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> dict[str, Any]:
    """Measure every backend in turn. Each one's clean-up runs inside
    ``uninterrupted()``, which the caller can use to hold back a stop
    request until the store's keys, files or collections are removed."""
    started = time.time()
    report: dict[str, Any] = {
        "schema": 1,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "settings": {
            "concurrency": list(config.concurrency),
            "duration_per_job_s": config.duration,
            "rounds": config.rounds,
            "footprint_families": config.families,
            "race_tasks": config.race,
            "counting_calls": config.count_calls,
            "manager": "HS256, access_ttl 15 min, refresh_ttl 7 days, "
            "reuse_grace 10 s (0 for the strict race)",
        },
        "environment": environment(),
        "load_average": {"start": load_average()},
        "stores": [backend.name for backend in backends],
        "servers": {},
        "results": [],
        "round_trips": {},
        "race": {"tasks": config.race, "ours": {}, "peer": None},
        "footprint": {},
        "notes": [],
    }
    display.start(planned_slices([b.name for b in backends], config))
    cpu = CpuFloors(secret)
    for backend in backends:
        display.step(f"{backend.name}: opening")
        try:
            # Held back from a stop request too, and inside the try: what an
            # opening creates (a file, a collection) before it fails or is
            # stopped is removed by the clean-up below all the same.
            with uninterrupted():
                await backend.open()
            await _bench_store(config, secret, cpu, backend, display, report)
        finally:
            with uninterrupted():
                await backend.aclose()
        report["notes"] += backend.notes
    report["load_average"]["end"] = load_average()
    report["elapsed_s"] = round(time.time() - started, 1)
    return report


async def _bench_store(
    config: Config,
    secret: bytes,
    cpu: CpuFloors,
    backend: Backend,
    display: Display,
    report: dict[str, Any],
) -> None:
    name = backend.name
    report["servers"][name] = await backend.server()
    manager = TokenPairManager(secret, store=backend.store)
    ours = OurWorkload(manager)
    remote = backend.floors()
    peer: PeerWorkload | None = None
    if isinstance(backend, RedisBackend):
        try:
            peer = PeerWorkload(
                HandRolledPeer(backend.commands, f"{backend.prefix}peer:", secret)
            )
        except ImportError:
            report["notes"].append(
                "the hand-rolled peer needs PyJWT (pip install 'tokenpair[bench]')"
            )

    display.step(f"{name}: counting round trips")
    report["round_trips"][name] = await _count(config, secret, backend)

    jobs = ours.jobs() + ours.store_jobs() + floor_jobs(cpu, remote)
    if peer is not None:
        jobs += peer.jobs()
    slice_seconds = config.duration / config.rounds
    for concurrency in config.concurrency:
        await ours.prepare(concurrency)
        if peer is not None:
            await peer.prepare(concurrency)
        measured = {(job.kind, job.name): Measurement() for job in jobs}
        for job in jobs:
            display.step(f"{name} · {job.name} · c={concurrency} · warming up")
            await run_slice(job.call, concurrency, min(_WARMUP_SECONDS, slice_seconds))
        for round_ in range(config.rounds):
            for job in jobs:
                label = job.name if job.kind != "peer" else f"hand-rolled {job.name}"
                display.step(
                    f"{name} · {label} · c={concurrency} · "
                    f"round {round_ + 1}/{config.rounds}"
                )
                await run_slice(
                    job.call,
                    concurrency,
                    slice_seconds,
                    measured[(job.kind, job.name)],
                )
                display.advance()
        rows = _rows(name, concurrency, jobs, measured, remote=bool(remote))
        report["results"] += rows
        display.group_done(rows)

    display.step(f"{name}: {config.race} concurrent refreshes of one token")
    report["race"]["ours"][name] = await _race_ours(secret, backend, config.race)
    if peer is not None:
        report["race"]["peer"] = await _race_peer(peer.peer, config.race)
    display.step(f"{name}: storage per family ({config.families} families)")
    report["footprint"][name] = await backend.footprint(config.families)


def _rows(
    store: str,
    concurrency: int,
    jobs: list[Job],
    measured: dict[tuple[str, str], Measurement],
    *,
    remote: bool,
) -> list[dict[str, Any]]:
    stats = {key: value.stats() for key, value in measured.items()}
    rows: list[dict[str, Any]] = []
    for job in jobs:
        own = stats[(job.kind, job.name)]
        row: dict[str, Any] = {
            "store": store,
            "kind": job.kind,
            "operation": job.name,
            "concurrency": concurrency,
            **own.as_dict(),
        }
        if job.kind != "floor":
            ratios: dict[str, float | None] = {}
            for floor in floors_for(job.name, remote=remote):
                base = stats[("floor", floor)]
                ratios[floor] = _ratio(own.p50_us, base.p50_us)
            primary = floors_for(job.name, remote=remote)[0]
            base = stats[("floor", primary)]
            row["floor"] = primary
            row["floor_throughput"] = round(base.throughput, 1)
            row["floor_p50_us"] = round(base.p50_us, 2)
            row["ratio"] = ratios[primary]
            row["ratios"] = ratios
            row["throughput_ratio"] = _ratio(base.throughput, own.throughput)
        if job.kind == "peer":
            ours = stats[("ours", job.name)]
            row["ours_throughput"] = round(ours.throughput, 1)
            row["ours_vs_peer_throughput"] = _ratio(ours.throughput, own.throughput)
        rows.append(row)
    return rows


def _ratio(value: float, base: float) -> float | None:
    if not (math.isfinite(value) and math.isfinite(base)) or base <= 0:
        return None
    return round(value / base, 3)


async def _count(config: Config, secret: bytes, backend: Backend) -> dict[str, Any]:
    """Run each operation a few times through a counting proxy (and the
    backend's own counters) and report calls per operation."""
    proxy = CountingStore(backend.store)
    manager = TokenPairManager(secret, store=proxy)
    workload = OurWorkload(manager)
    await workload.prepare(1)
    jobs = {job.name: job for job in workload.jobs()}
    calls = config.count_calls
    for job in jobs.values():  # connections, scripts and caches warm
        await job.call(0)
    for _ in range(calls):
        await jobs["issue"].call(0)

    counted: dict[str, Any] = {}
    steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        (operation, _bind(jobs[operation])) for operation in OPERATIONS
    ]
    steps += [(f"floor:{name}", call) for name, call in backend.floors().items()]
    for label, call in steps:
        proxy.calls.clear()
        await backend.begin_count()
        for _ in range(calls):
            await call()
        by_kind = await backend.end_count()
        entry: dict[str, Any] = {}
        if not label.startswith("floor:"):
            entry["store_calls"] = _per_call(proxy.calls, calls)
        for kind, counts in by_kind.items():
            entry[kind] = _per_call(Counter(counts), calls)
        counted[label] = entry
    return counted


def _bind(job: Job) -> Callable[[], Awaitable[object]]:
    async def call() -> object:
        return await job.call(0)

    return call


def _per_call(counts: Counter[str], calls: int) -> dict[str, float]:
    return {
        name: round(number / calls, 2)
        for name, number in sorted(counts.items())
        if number
    }


async def _gather_race(
    attempt: Callable[[], Awaitable[Any]],
    refusals: tuple[type[BaseException], ...],
    tasks: int,
) -> tuple[list[Any], Counter[str]]:
    """Start ``tasks`` attempts together; return the successes and the
    refusals by type."""
    gate = asyncio.Event()
    accepted: list[Any] = []
    refused: Counter[str] = Counter()

    async def one() -> None:
        await gate.wait()
        try:
            accepted.append(await attempt())
        except refusals as exc:
            refused[type(exc).__name__] += 1

    async with asyncio.TaskGroup() as group:
        for _ in range(tasks):
            group.create_task(one())
        await asyncio.sleep(0)
        gate.set()
    return accepted, refused


async def _race_ours(secret: bytes, backend: Backend, tasks: int) -> dict[str, Any]:
    strict = TokenPairManager(secret, store=backend.store, reuse_grace=0)
    pair = await strict.generate_token_pair({"sub": "race-strict"})
    accepted, refused = await _gather_race(
        lambda: strict.refresh(pair.refresh_token), (RefreshTokenError,), tasks
    )
    # With the default grace window, concurrent presentations of the token
    # just rotated count as retries of a lost response; each gets a
    # successor, and only the last one written stays usable.
    lenient = TokenPairManager(secret, store=backend.store)
    pair = await lenient.generate_token_pair({"sub": "race-default"})
    retried, retried_refusals = await _gather_race(
        lambda: lenient.refresh(pair.refresh_token), (RefreshTokenError,), tasks
    )
    live = 0
    for token in retried:
        assert isinstance(token, Token)
        described = await lenient.introspect(token.refresh_token, "refresh_token")
        live += bool(described.get("active"))
    return {
        "reuse_grace_0": {"accepted": len(accepted), "refused": dict(refused)},
        "reuse_grace_default": {
            "accepted": len(retried),
            "refused": dict(retried_refusals),
            "usable_successors": live,
        },
    }


async def _race_peer(peer: HandRolledPeer, tasks: int) -> dict[str, Any]:
    _, refresh_token = await peer.issue("race-peer")
    accepted, refused = await _gather_race(
        lambda: peer.refresh(refresh_token), (PeerRefusedError,), tasks
    )
    return {"accepted": len(accepted), "refused": dict(refused)}
