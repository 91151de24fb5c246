"""The machine and software a run measured, for the output and the JSON."""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from ._backends import redact_url

__all__ = ["environment", "load_average"]

_PACKAGES = (
    "tokenpair",
    "joserfc",
    "cryptography",
    "anyio",
    "aiosqlite",
    "redis",
    "hiredis",
    "pymongo",
    "motor",
    "PyJWT",
    "rich",
    "matplotlib",
)


def environment() -> dict[str, Any]:
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "build": " ".join(platform.python_build()),
            "compiler": platform.python_compiler(),
        },
        "event_loop": _event_loop(),
        "platform": platform.platform(),
        "machine": _machine(),
        "packages": _packages(),
        "commit": _commit(),
        "argv": _masked(sys.argv[1:]),
    }


def _masked(argv: list[str]) -> list[str]:
    """The command line with the password of any URL on it masked, since
    the report is written to be shared."""
    masked: list[str] = []
    for arg in argv:
        if arg.startswith("-") and "=" in arg:  # --redis-url=redis://...
            option, _, value = arg.partition("=")
            masked.append(f"{option}={redact_url(value)}")
        else:
            masked.append(redact_url(arg))
    return masked


def load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def _event_loop() -> str:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return "asyncio"
    return f"{type(loop).__module__}.{type(loop).__name__}"


def _packages() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _machine() -> dict[str, Any]:
    described: dict[str, Any] = {
        "architecture": platform.machine(),
        "cpu_model": platform.processor() or None,
        "logical_cores": os.cpu_count(),
    }
    if hasattr(os, "sched_getaffinity"):
        described["usable_cores"] = len(os.sched_getaffinity(0))
    cpuinfo = _read("/proc/cpuinfo")
    if cpuinfo:
        cores: set[tuple[str, str]] = set()
        physical = core = ""
        models: list[str] = []
        for line in cpuinfo.splitlines():
            name, _, value = (part.strip() for part in line.partition(":"))
            if name == "model name":
                models.append(value)
            elif name == "physical id":
                physical = value
            elif name == "core id":
                core = value
                cores.add((physical, core))
            elif name == "cpu MHz" and "cpu_mhz" not in described:
                described["cpu_mhz"] = float(value)
        if models:
            described["cpu_model"] = models[0]
        if cores:
            described["physical_cores"] = len(cores)
    meminfo = _read("/proc/meminfo")
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            described["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
    described["virtualised"] = " hypervisor" in cpuinfo
    return described


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _commit() -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}{'+changes' if dirty else ''}"
