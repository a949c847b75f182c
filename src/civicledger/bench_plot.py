"""``civic bench --plot FILE.png``: committed throughput and latency over the run.

Three panels sharing the time axis (seconds since the first submission): transactions
submitted and committed per second, with the run's mean committed rate; the running
totals of both (the gap between them is the backlog); and the p50 and p99 submit→commit
latency of the transactions committed in each second. Drawn with
matplotlib's Agg backend (no display needed); matplotlib is the optional ``plot`` extra.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from civicledger.bench import BenchResult
from civicledger.bench_loads import LOAD_TITLES

__all__ = ["require_matplotlib", "save_plot"]


def require_matplotlib() -> None:
    """Raise ``RuntimeError`` with the fix if matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RuntimeError(
            "--plot needs matplotlib: pip install 'civicledger[plot]' (make bootstrap does)"
        ) from None


def _seconds(values: list[float | None]) -> list[float]:
    # A second without a commit has no latency: NaN leaves a gap in the line, not a zero.
    return [math.nan if v is None else v / 1000 for v in values]


def save_plot(result: BenchResult, path: Path) -> None:
    """Write the run's timeline as a PNG to ``path``."""
    require_matplotlib()
    from matplotlib.figure import Figure

    points = result.timeline
    seconds = [p.second + 0.5 for p in points]
    figure = Figure(figsize=(10, 8.5), dpi=110, layout="constrained")
    throughput, totals, latency = figure.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2, 3]}
    )
    validators = f"{result.validators} validator" + ("s" if result.validators > 1 else "")
    figure.suptitle(
        f"civic bench: {validators}, {LOAD_TITLES[result.load]}: {result.committed:,} "
        f"committed at {result.committed_tps:,.0f} tx/s "
        f"({result.ratio_of_verify_limit:.1%} of the Ed25519 limit)",
        fontsize=12,
    )

    throughput.bar(
        seconds,
        [p.committed for p in points],
        width=0.9,
        color="tab:blue",
        label="committed",
    )
    throughput.step(
        [p.second for p in points] + [len(points)],
        [p.submitted for p in points] + [points[-1].submitted if points else 0],
        where="post",
        color="tab:orange",
        linewidth=1.5,
        label="submitted",
    )
    throughput.axhline(
        result.committed_tps,
        color="tab:blue",
        linestyle="--",
        linewidth=1,
        label=f"mean committed ({result.committed_tps:,.0f} tx/s)",
    )
    throughput.set_ylabel("transactions per second")
    # Headroom above the highest bar for the legend.
    highest = max(
        [result.committed_tps, *(p.committed for p in points), *(p.submitted for p in points)]
    )
    throughput.set_ylim(0, 1.3 * max(highest, 1))
    throughput.grid(axis="y", alpha=0.3)
    throughput.legend(loc="upper left", ncols=3, fontsize=9)

    # The gap between the two totals is the backlog: submitted, not committed yet.
    edges = [0, *(p.second + 1 for p in points)]
    totals.plot(
        edges,
        list(itertools.accumulate((p.submitted for p in points), initial=0)),
        color="tab:orange",
        label="submitted",
    )
    totals.plot(
        edges,
        list(itertools.accumulate((p.committed for p in points), initial=0)),
        color="tab:blue",
        label="committed",
    )
    totals.set_ylabel("transactions so far")
    totals.set_ylim(0, 1.3 * max(result.transactions, 1))
    totals.grid(alpha=0.3)
    totals.legend(loc="upper left", ncols=2, fontsize=9)

    latency.plot(
        seconds,
        _seconds([p.p50_ms for p in points]),
        marker="o",
        markersize=3,
        color="tab:green",
        label=f"p50 (run: {result.latency_ms['p50'] / 1000:.2f} s)",
    )
    latency.plot(
        seconds,
        _seconds([p.p99_ms for p in points]),
        marker="o",
        markersize=3,
        color="tab:red",
        label=f"p99 (run: {result.latency_ms['p99'] / 1000:.2f} s)",
    )
    latency.set_ylabel("submit → commit latency (s)\nof the transactions committed")
    latency.set_xlabel("seconds since the first submission")
    slowest = max((p.p99_ms for p in points if p.p99_ms is not None), default=1000.0)
    latency.set_ylim(0, 1.3 * slowest / 1000)
    latency.set_xlim(0, max(1, len(points)))
    latency.grid(alpha=0.3)
    latency.legend(loc="upper left", ncols=2, fontsize=9)
    figure.savefig(path, format="png")
