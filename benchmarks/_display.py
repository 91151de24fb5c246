"""Progress while a run goes, and the summary at its end.

With rich installed and a terminal on stdout, a progress bar and rich tables;
otherwise plain lines that read well in a CI log.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = ["make_display", "render_summary"]


def _number(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


_FLOOR_HEADERS = (
    "store",
    "floor",
    "conc",
    "ops/s",
    "p50 µs",
    "p99 µs",
    "CPU µs/op",
    "busy",
)


def _percent(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.0%}"


def _counts(counts: dict[str, float] | None) -> str:
    if not counts:
        return "-"
    return ", ".join(f"{name} {number:g}" for name, number in counts.items())


class PlainDisplay:
    """One line per store and concurrency level, results as they come."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._total = 0
        self._done = 0
        self._last_group = ""

    def _print(self, text: str) -> None:
        print(text, file=self._stream, flush=True)

    def start(self, total: int) -> None:
        self._total = total

    def step(self, text: str) -> None:
        group = text.split(" · ")[0] + (
            " · " + text.split(" · ")[2] if text.count(" · ") >= 2 else ""
        )
        if group != self._last_group:
            self._last_group = group
            self._print(f"[{self._done:>4}/{self._total}] {group}")

    def advance(self) -> None:
        self._done += 1

    def note(self, text: str) -> None:
        self._print(text)

    def group_done(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if row["kind"] == "floor":
                continue
            who = "hand-rolled " if row["kind"] == "peer" else ""
            self._print(
                f"    {row['store']:<8} {who + row['operation']:<24} "
                f"c={row['concurrency']:<4} {_number(row['throughput']):>10} ops/s  "
                f"p50 {_number(row['p50_us'], 1):>8} us  "
                f"p99 {_number(row['p99_us'], 1):>8} us  "
                f"{_ratio(row.get('ratio'))} {row.get('floor', '')}"
            )

    def stop(self) -> None:
        pass


class RichDisplay:
    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console()
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._task: Any = None

    def start(self, total: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task("starting", total=total)

    def step(self, text: str) -> None:
        self._progress.update(self._task, description=text)

    def advance(self) -> None:
        self._progress.advance(self._task)

    def note(self, text: str) -> None:
        self._progress.console.print(text)

    def group_done(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if row["kind"] != "ours":
                continue
            self._progress.console.print(
                f"[bold]{row['store']}[/] {row['operation']} "
                f"c={row['concurrency']}: {_number(row['throughput'])} ops/s, "
                f"p99 {_number(row['p99_us'], 1)} µs, "
                f"{_ratio(row.get('ratio'))} {row.get('floor', '')}"
            )

    def stop(self) -> None:
        self._progress.stop()


def make_display(stream: TextIO | None = None) -> PlainDisplay | RichDisplay:
    stream = sys.stdout if stream is None else stream
    if stream.isatty():
        try:
            return RichDisplay()
        except ImportError:
            pass
    return PlainDisplay(stream)


class _Tables:
    def __init__(self, rich: bool, stream: TextIO) -> None:
        self._stream = stream
        self._console: Any = None
        if rich:
            from rich.console import Console

            self._console = Console()

    def heading(self, text: str) -> None:
        if self._console is not None:
            self._console.rule(f"[bold]{text}")
        else:
            print(f"\n== {text} ==", file=self._stream)

    def line(self, text: str) -> None:
        if self._console is not None:
            self._console.print(text, highlight=False, markup=False)
        else:
            print(text, file=self._stream)

    def table(
        self,
        title: str,
        headers: Sequence[str],
        rows: Sequence[Sequence[str]],
        right: Sequence[int] = (),
    ) -> None:
        if self._console is not None:
            from rich.table import Table

            table = Table(title=title, title_justify="left")
            for index, header in enumerate(headers):
                table.add_column(header, justify="right" if index in right else "left")
            for row in rows:
                table.add_row(*row)
            self._console.print(table)
            return
        widths = [
            max([len(header), *(len(row[i]) for row in rows)])
            for i, header in enumerate(headers)
        ]

        def render(cells: Sequence[str]) -> str:
            return "  ".join(
                cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                for i, cell in enumerate(cells)
            ).rstrip()

        print(f"\n{title}", file=self._stream)
        print(render(headers), file=self._stream)
        print(render(["-" * width for width in widths]), file=self._stream)
        for row in rows:
            print(render(row), file=self._stream)


def render_summary(report: dict[str, Any], stream: TextIO | None = None) -> None:
    stream = sys.stdout if stream is None else stream
    rich = stream.isatty()
    if rich:
        try:
            import rich as _rich  # noqa: F401
        except ImportError:
            rich = False
    out = _Tables(rich, stream)
    env = report["environment"]
    machine = env["machine"]
    out.heading("tokenpair benchmark")
    out.line(
        f"machine: {machine.get('cpu_model')}, {machine.get('logical_cores')} "
        f"logical cores ({machine.get('usable_cores')} usable), "
        f"{machine.get('memory_gib')} GiB"
        + (", virtualised" if machine.get("virtualised") else "")
    )
    out.line(
        f"python {env['python']['version']} ({env['python']['implementation']}), "
        f"{env['platform']}, commit {env.get('commit')}"
    )
    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
    out.line(f"packages: {packages}")
    for store, server in report["servers"].items():
        described = ", ".join(f"{k} {v}" for k, v in server.items() if v is not None)
        out.line(f"{store}: {described}")
    settings = report["settings"]
    rounds = settings["rounds"]
    out.line(
        f"{settings['duration_per_job_s']} s per job and concurrency level, in "
        f"{rounds} interleaved round{'' if rounds == 1 else 's'}; load average "
        f"{report['load_average'].get('start')} -> {report['load_average'].get('end')}"
    )

    round_trips = report["round_trips"]

    def trips(store: str, operation: str) -> str:
        entry = round_trips.get(store, {}).get(operation, {})
        for kind in ("round_trips", "statements"):
            if kind in entry:
                return f"{sum(entry[kind].values()):g}"
        return "-"

    ours = [row for row in report["results"] if row["kind"] == "ours"]
    out.table(
        "Operations (ratio = p50 latency / p50 of the floor, measured in this run)",
        [
            "store",
            "operation",
            "conc",
            "ops/s",
            "p50 µs",
            "p99 µs",
            "CPU µs/op",
            "floor",
            "floor p50 µs",
            "ratio",
            "round trips",
        ],
        [
            [*_operation_cells(row), trips(row["store"], row["operation"])]
            for row in ours
        ],
        right=(2, 3, 4, 5, 6, 8, 9, 10),
    )
    floors = [row for row in report["results"] if row["kind"] == "floor"]
    out.table(
        "Floors",
        _FLOOR_HEADERS,
        [_floor_cells(row) for row in floors],
        right=(2, 3, 4, 5, 6, 7),
    )
    peer = [row for row in report["results"] if row["kind"] == "peer"]
    if peer:
        out.table(
            "Hand-rolled peer on the same Redis (PyJWT, GET then SET)",
            [
                "operation",
                "conc",
                "peer ops/s",
                "peer p99 µs",
                "ours ops/s",
                "ours/peer",
            ],
            [_peer_cells(row) for row in peer],
            right=(1, 2, 3, 4, 5),
        )
    out.table(
        "Calls per operation (counted)",
        ["store", "operation", "store methods", "sent to the server", "executed there"],
        [
            [
                store,
                operation,
                _counts(entry.get("store_calls")),
                _counts(entry.get("round_trips") or entry.get("statements")),
                _counts(entry.get("server_commands")),
            ]
            for store, entries in round_trips.items()
            for operation, entry in entries.items()
        ],
    )
    race = report["race"]
    race_rows = [
        [
            f"tokenpair on {store}",
            str(outcome["reuse_grace_0"]["accepted"]),
            f"{outcome['reuse_grace_default']['accepted']} "
            f"({outcome['reuse_grace_default']['usable_successors']} usable after)",
        ]
        for store, outcome in race["ours"].items()
    ]
    if race["peer"] is not None:
        race_rows.append(["hand-rolled on redis", str(race["peer"]["accepted"]), "-"])
    out.table(
        f"{race['tasks']} concurrent refreshes of one token: how many got through",
        ["who", "reuse_grace=0", "default grace (10 s)"],
        race_rows,
        right=(1,),
    )
    out.table(
        "Storage per live family",
        ["store", "families", "issued", "after one rotation", "method"],
        [
            [
                store,
                str(entry.get("families", "-")),
                _number(entry.get("bytes_per_family_issued")) + " B",
                _number(entry.get("bytes_per_family_rotated")) + " B",
                entry.get("method", "not measured"),
            ]
            for store, entry in report["footprint"].items()
        ],
        right=(1, 2, 3),
    )
    out.table(
        "Targets",
        ["target", "measured", "limit", "met", "read from"],
        [
            [
                target["target"],
                "-" if target["measured"] is None else f"{target['measured']:g}",
                f"{target['comparison']} {target['limit']:g}",
                {True: "met", False: "MISSED", None: "n/a"}[target["met"]],
                target["detail"],
            ]
            for target in report.get("targets", [])
        ],
        right=(1,),
    )
    for note in report["notes"]:
        out.line(f"note: {note}")
    for reason in report.get("skipped", []):
        out.line(f"skipped {reason}")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines)


def render_markdown(report: dict[str, Any]) -> str:
    """The result tables as Markdown, for docs/benchmarks.md."""
    sections: list[str] = []
    ours = [row for row in report["results"] if row["kind"] == "ours"]
    lowest = min(report["settings"]["concurrency"])
    sections.append(
        _md_table(
            [
                "store",
                "operation",
                "conc",
                "ops/s",
                "p50 µs",
                "p99 µs",
                "CPU µs/op",
                "floor",
                "floor p50 µs",
                "ratio",
                "other floors",
            ],
            [
                [
                    *_operation_cells(row),
                    # At higher concurrency a latency includes queueing for
                    # the server, which a CPU-only floor knows nothing of.
                    ", ".join(
                        f"{_ratio(value)} {name}"
                        for name, value in row["ratios"].items()
                        if name != row["floor"] and row["concurrency"] == lowest
                    )
                    or "-",
                ]
                for row in ours
            ],
        )
    )
    floors = [row for row in report["results"] if row["kind"] == "floor"]
    sections.append(
        _md_table(
            _FLOOR_HEADERS,
            [_floor_cells(row) for row in floors],
        )
    )
    peer = [row for row in report["results"] if row["kind"] == "peer"]
    sections.append(
        _md_table(
            [
                "operation",
                "conc",
                "hand-rolled ops/s",
                "hand-rolled p99 µs",
                "tokenpair ops/s",
                "tokenpair / hand-rolled",
            ],
            [_peer_cells(row) for row in peer],
        )
        if peer
        else "(no Redis in this run)"
    )
    sections.append(
        _md_table(
            [
                "store",
                "operation",
                "store methods",
                "sent to the server",
                "executed by the server",
            ],
            [
                [
                    store,
                    operation,
                    _counts(entry.get("store_calls")),
                    _counts(entry.get("round_trips") or entry.get("statements")),
                    _counts(entry.get("server_commands")),
                ]
                for store, entries in report["round_trips"].items()
                for operation, entry in entries.items()
            ],
        )
    )
    race = report["race"]
    race_rows = [
        [
            f"tokenpair, {store}",
            str(outcome["reuse_grace_0"]["accepted"]),
            f"{outcome['reuse_grace_default']['accepted']} accepted, "
            f"{outcome['reuse_grace_default']['usable_successors']} usable after",
        ]
        for store, outcome in race["ours"].items()
    ]
    if race["peer"] is not None:
        race_rows.append(
            ["hand-rolled GET then SET, redis", str(race["peer"]["accepted"]), "-"]
        )
    sections.append(
        _md_table(["who", "reuse_grace=0", "default reuse_grace (10 s)"], race_rows)
    )
    sections.append(
        _md_table(
            [
                "store",
                "families",
                "bytes per family, issued",
                "after one rotation",
                "method",
            ],
            [
                [
                    store,
                    str(entry.get("families", "-")),
                    _number(entry.get("bytes_per_family_issued")),
                    _number(entry.get("bytes_per_family_rotated")),
                    entry.get("method", "not measured")
                    + (
                        f"; indexes {_number(entry['index_bytes_per_family'])} B"
                        if entry.get("index_bytes_per_family")
                        else ""
                    ),
                ]
                for store, entry in report["footprint"].items()
            ],
        )
    )
    sections.append(
        _md_table(
            ["target", "measured", "limit", "result", "read from"],
            [
                [
                    target["target"],
                    "-" if target["measured"] is None else f"{target['measured']:g}",
                    f"{target['comparison']} {target['limit']:g}",
                    {True: "met", False: "**missed**", None: "n/a"}[target["met"]],
                    target["detail"],
                ]
                for target in report.get("targets", [])
            ],
        )
    )
    titles = [
        "Operations",
        "Floors",
        "Hand-rolled peer on the same Redis",
        "Calls per operation",
        f"{race['tasks']} concurrent refreshes of one token",
        "Storage per live family",
        "Targets",
    ]
    return (
        "\n\n".join(
            f"### {title}\n\n{body}"
            for title, body in zip(titles, sections, strict=True)
        )
        + "\n"
    )


def _operation_cells(row: dict[str, Any]) -> list[str]:
    """The columns an operation row shows in every table of results."""
    return [
        row["store"],
        row["operation"],
        str(row["concurrency"]),
        _number(row["throughput"]),
        _number(row["p50_us"], 1),
        _number(row["p99_us"], 1),
        _number(row.get("cpu_us_per_op"), 1),
        row["floor"],
        _number(row["floor_p50_us"], 1),
        _ratio(row["ratio"]),
    ]


def _floor_cells(row: dict[str, Any]) -> list[str]:
    return [
        row["store"],
        row["operation"],
        str(row["concurrency"]),
        _number(row["throughput"]),
        _number(row["p50_us"], 1),
        _number(row["p99_us"], 1),
        _number(row.get("cpu_us_per_op"), 1),
        _percent(row.get("cpu_busy")),
    ]


def _peer_cells(row: dict[str, Any]) -> list[str]:
    return [
        row["operation"],
        str(row["concurrency"]),
        _number(row["throughput"]),
        _number(row["p99_us"], 1),
        _number(row["ours_throughput"]),
        _ratio(row["ours_vs_peer_throughput"]),
    ]
