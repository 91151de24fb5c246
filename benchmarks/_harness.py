"""Closed-loop load: N tasks call one operation back to back for a while.

Every call is timed on its own with ``time.perf_counter_ns``; throughput is
the number of calls over the wall time the tasks took. After each call a task
yields to the event loop (outside the timed region), so that tasks whose
operation never suspends (CPU-only work, the memory store) still take turns
the way request handlers would. Floors run through the same loop, so what the
loop costs is in both sides of every ratio.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EXHAUSTED",
    "Job",
    "Measurement",
    "Stats",
    "run_slice",
]

#: What a job's call returns when it has nothing left to do (a pool of tokens
#: ran dry); that call is not counted and the task stops for this slice.
EXHAUSTED: Any = object()

Call = Callable[[int], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Job:
    """One thing to measure: ``call(worker)`` does it once, for the task
    numbered ``worker``."""

    kind: str  # "ours", "floor" or "peer"
    name: str
    call: Call


@dataclass(frozen=True, slots=True)
class Stats:
    ops: int
    seconds: float
    throughput: float
    mean_us: float
    p50_us: float
    p99_us: float
    cpu_us_per_op: float
    cpu_busy: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "ops": self.ops,
            "seconds": round(self.seconds, 4),
            "throughput": round(self.throughput, 1),
            "mean_us": round(self.mean_us, 2),
            "p50_us": round(self.p50_us, 2),
            "p99_us": round(self.p99_us, 2),
            "cpu_us_per_op": round(self.cpu_us_per_op, 2),
            "cpu_busy": round(self.cpu_busy, 3),
        }


@dataclass(slots=True)
class Measurement:
    """Latencies and wall time gathered over one or more slices."""

    latencies_ns: list[int] = field(default_factory=list)
    elapsed_ns: int = 0
    #: CPU time of this process (event loop and driver threads) meanwhile.
    cpu_ns: int = 0

    def stats(self) -> Stats:
        ops = len(self.latencies_ns)
        seconds = self.elapsed_ns / 1e9
        busy = self.cpu_ns / self.elapsed_ns if self.elapsed_ns else math.nan
        if ops == 0:
            return Stats(0, seconds, 0.0, math.nan, math.nan, math.nan, math.nan, busy)
        ordered = sorted(self.latencies_ns)
        return Stats(
            ops=ops,
            seconds=seconds,
            throughput=ops / seconds if seconds > 0 else 0.0,
            mean_us=sum(ordered) / ops / 1e3,
            p50_us=_percentile(ordered, 0.50) / 1e3,
            p99_us=_percentile(ordered, 0.99) / 1e3,
            cpu_us_per_op=self.cpu_ns / ops / 1e3,
            cpu_busy=busy,
        )


def _percentile(ordered: list[int], fraction: float) -> float:
    # Nearest rank: the smallest sample at or above the fraction.
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[rank - 1])


async def run_slice(
    call: Call,
    concurrency: int,
    seconds: float,
    into: Measurement | None = None,
) -> Measurement:
    """Run ``concurrency`` tasks calling ``call`` until ``seconds`` pass."""
    measurement = Measurement() if into is None else into
    latencies = measurement.latencies_ns
    clock = time.perf_counter_ns
    pause = asyncio.sleep
    cpu_start = time.process_time_ns()
    start = clock()
    deadline = start + int(seconds * 1e9)

    async def worker(index: int) -> None:
        record = latencies.append
        while clock() < deadline:
            began = clock()
            outcome = await call(index)
            ended = clock()
            if outcome is EXHAUSTED:
                return
            record(ended - began)
            await pause(0)

    async with asyncio.TaskGroup() as group:
        for index in range(concurrency):
            group.create_task(worker(index))
    measurement.elapsed_ns += clock() - start
    measurement.cpu_ns += time.process_time_ns() - cpu_start
    return measurement
