"""The performance targets, read from a run's results."""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate"]

_STORE_OPERATIONS = ("issue", "refresh", "authenticate", "revoke")


def _find(
    report: dict[str, Any], store: str, operation: str, concurrency: int
) -> dict[str, Any] | None:
    for row in report["results"]:
        if (
            row["kind"] == "ours"
            and row["store"] == store
            and row["operation"] == operation
            and row["concurrency"] == concurrency
        ):
            return dict(row)
    return None


def _floor_row(
    report: dict[str, Any], store: str, floor: str, concurrency: int
) -> dict[str, Any] | None:
    for row in report["results"]:
        if (
            row["kind"] == "floor"
            and row["store"] == store
            and row["operation"] == floor
            and row["concurrency"] == concurrency
        ):
            return dict(row)
    return None


def _scaling(first: dict[str, Any] | None, last: dict[str, Any] | None) -> float | None:
    if first is None or last is None or not first["throughput"]:
        return None
    return round(float(last["throughput"]) / float(first["throughput"]), 2)


def _target(
    name: str, measured: float | None, limit: float, *, at_most: bool, detail: str
) -> dict[str, Any]:
    met = (
        None
        if measured is None
        else (measured <= limit if at_most else measured >= limit)
    )
    return {
        "target": name,
        "measured": measured,
        "limit": limit,
        "comparison": "<=" if at_most else ">=",
        "met": met,
        "detail": detail,
    }


def evaluate(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the figure it was judged on; ``met`` is ``None``
    where the run did not measure it."""
    levels = report["settings"]["concurrency"]
    low, high = min(levels), max(levels)
    stores = report["stores"]
    targets: list[dict[str, Any]] = []

    row = _find(report, "memory", "issue", low)
    targets.append(
        _target(
            "issue within 1.5x of signing + refresh secret",
            None if row is None else row["ratios"].get("sign+secret"),
            1.5,
            at_most=True,
            detail=f"memory store, p50 latency ratio at concurrency {low}",
        )
    )
    for store in stores:
        row = _find(report, store, "verify", low)
        if row is not None:
            targets.append(
                _target(
                    "verify within 1.2x of bare joserfc decode with the same checks",
                    row["ratios"].get("decode"),
                    1.2,
                    at_most=True,
                    detail=f"{store}, p50 latency ratio at concurrency {low}",
                )
            )
    if "redis" in stores:
        counted = report["round_trips"].get("redis", {}).get("refresh", {})
        trips = counted.get("round_trips")
        targets.append(
            _target(
                "refresh on Redis takes one round trip",
                None if trips is None else sum(trips.values()),
                1,
                at_most=True,
                detail="commands the client sent per refresh: "
                + (", ".join(f"{k} {v:g}" for k, v in trips.items()) if trips else "?"),
            )
        )
    for store in ("redis", "sqlite"):
        if store not in stores:
            continue
        row = _find(report, store, "refresh", low)
        ratios = {} if row is None else row["ratios"]
        # The other two ratios say where the rest goes: the manager's own
        # work (signing, the refresh secret) and the store's rotation beyond
        # a bare round trip.
        others = "; ".join(
            f"{ratios[name]:g}x {label}"
            for name, label in (
                ("sign+secret+write", "sign+secret+write"),
                ("rotate", "the store's rotation alone"),
            )
            if ratios.get(name) is not None
        )
        targets.append(
            _target(
                f"refresh on {'Redis' if store == 'redis' else 'SQLite'} within "
                "1.5x of its floor",
                ratios.get("write"),
                1.5,
                at_most=True,
                detail=f"p50 latency ratio to one bare "
                f"{'EVALSHA' if store == 'redis' else 'UPDATE ... RETURNING'} "
                f"at concurrency {low}" + (f" ({others})" if others else ""),
            )
        )
    if high > low:
        for store in ("redis", "mongodb"):
            if store not in stores:
                continue
            # The bare round trip's own scaling says how much a single event
            # loop can overlap on this machine at all.
            floor_scale = _scaling(
                _floor_row(report, store, "write", low),
                _floor_row(report, store, "write", high),
            )
            for operation in _STORE_OPERATIONS:
                scale = _scaling(
                    _find(report, store, operation, low),
                    _find(report, store, operation, high),
                )
                targets.append(
                    _target(
                        f"{store} {operation} at concurrency {high} reaches 1.5x "
                        f"its concurrency-{low} throughput",
                        scale,
                        1.5,
                        at_most=False,
                        detail="throughput ratio; the bare write floor scaled "
                        f"{'?' if floor_scale is None else f'{floor_scale:g}'}x",
                    )
                )
    return targets
