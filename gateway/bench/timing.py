"""Timing helpers shared by the benchmarks: repeat a call, take the median, report ns."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ns_per_call(fn: Callable[[], object], calls: int, runs: int = 5) -> float:
    """Median over `runs` of the mean wall time (ns) of `calls` back-to-back calls of `fn`.

    The first run also warms caches and JIT dispatch; the median discards a noisy run.
    """
    fn()
    per_run = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        per_run.append((time.perf_counter_ns() - start) / calls)
    return statistics.median(per_run)


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    """Plain-text table with right-aligned columns after the first."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        first, *rest = cells
        return "  ".join(
            [first.ljust(widths[0])] + [c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)]
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])
