from __future__ import annotations

from datetime import timedelta

__all__ = ["FakeClock"]


class FakeClock:
    """A clock that stands still until told to move.

    Pass it as ``clock=`` to a manager; call :meth:`advance` to let time
    pass. It starts at a fixed, realistic moment with a fractional part, so
    that code rounding to whole seconds shows up in tests.
    """

    def __init__(self, start: float = 1_800_000_000.25) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float | timedelta) -> float:
        """Move forward (never backward) and return the new time."""
        step = seconds.total_seconds() if isinstance(seconds, timedelta) else seconds
        if step < 0:
            raise ValueError("a FakeClock only moves forward")
        self.now += step
        return self.now

    def __repr__(self) -> str:
        return f"FakeClock({self.now!r})"
