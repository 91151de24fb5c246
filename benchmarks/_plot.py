"""A PNG chart of throughput and p99 latency per store and operation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._workloads import OPERATIONS

__all__ = ["plot"]


def _label(report: dict[str, Any], store: str) -> str:
    server = report["servers"].get(store, {})
    if server.get("git_version") == "mongoeco":
        return f"{store} (mongoeco)"
    return store


def plot(report: dict[str, Any], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels: list[int] = report["settings"]["concurrency"]
    series: list[tuple[str, str, str]] = [
        (store, "ours", _label(report, store)) for store in report["stores"]
    ]
    if any(row["kind"] == "peer" for row in report["results"]):
        series.append(("redis", "peer", "redis, hand-rolled"))
    rows = {
        (row["store"], row["kind"], row["operation"], row["concurrency"]): row
        for row in report["results"]
    }
    figure, axes = plt.subplots(
        2,
        len(levels),
        figsize=(6.5 * len(levels), 8),
        squeeze=False,
        constrained_layout=True,
    )
    width = 0.8 / max(len(series), 1)
    positions = range(len(OPERATIONS))
    for column, level in enumerate(levels):
        for row_index, (field, label) in enumerate(
            (("throughput", "operations per second"), ("p99_us", "p99 latency (µs)"))
        ):
            axis = axes[row_index][column]
            for index, (store, kind, name) in enumerate(series):
                values = [
                    rows.get((store, kind, operation, level), {}).get(field) or 0
                    for operation in OPERATIONS
                ]
                offsets = [p - 0.4 + width * (index + 0.5) for p in positions]
                axis.bar(
                    offsets,
                    values,
                    width,
                    label=name,
                    hatch="//" if kind == "peer" else None,
                )
            axis.set_xticks(list(positions), OPERATIONS)
            axis.set_yscale("log")
            axis.set_ylabel(label)
            axis.set_title(f"{label}, concurrency {level}")
            axis.grid(axis="y", which="both", alpha=0.3)
    # One legend for the figure, under the charts, where it hides no bar.
    handles, names = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, names, loc="outside lower center", ncols=len(series))
    machine = report["environment"]["machine"]
    figure.suptitle(
        f"tokenpair {report['environment']['packages'].get('tokenpair')} on "
        f"{machine.get('cpu_model')}, {machine.get('logical_cores')} cores; "
        f"Python {report['environment']['python']['version']}"
    )
    figure.savefig(path, dpi=110)
    plt.close(figure)
