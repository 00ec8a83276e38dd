"""One picture per benchmark: for each deploy strategy, what every request of the run got, over time.

A table says "0 failed"; the picture shows *when* a strategy fails and for how long, next to the phase
of the deploy that caused it, which is what a reader needs to believe (or doubt) a zero-downtime claim.

    python bench/plot.py          # renders bench/out/demo.png from synthetic runs
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

if TYPE_CHECKING:
    from integration.load import LoadResult

ROOT = Path(__file__).resolve().parents[1]
BUCKET = 0.1  # seconds: fine enough to show a 200 ms blip, coarse enough for ~20 requests a bar at 200/s
OK_COLOR, FAIL_COLOR, GAP_COLOR, MARK_COLOR, LATENCY_COLOR = "#4caf50", "#d62728", "#d62728", "#3a3a3a", "#1f5fbf"


def _buckets(result: LoadResult, end: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Left edges, successes, failures and worst successful latency (ms) per bucket, by request start."""
    n = max(1, int(np.ceil(end / BUCKET)))
    ok, bad = np.zeros(n), np.zeros(n)
    worst = np.full(n, np.nan)
    for r in result.records:
        i = min(n - 1, int(r.start / BUCKET))
        if r.is_ok(result.ok_statuses):
            ok[i] += 1
            worst[i] = np.fmax(worst[i], r.latency * 1000)
        else:
            bad[i] += 1
    return np.arange(n) * BUCKET, ok, bad, worst


def _panel(ax: Axes, lat: Axes, name: str, result: LoadResult, end: float) -> None:
    """One run: stacked bars with the longest gap shaded and the phase marks; latency in the strip below."""
    left, ok, bad, worst = _buckets(result, end)
    ax.bar(left, ok, width=BUCKET, align="edge", color=OK_COLOR, linewidth=0, zorder=2)
    ax.bar(left, bad, width=BUCKET, align="edge", bottom=ok, color=FAIL_COLOR, linewidth=0, zorder=2)
    top = max(1.0, float((ok + bad).max()))
    ax.set_ylim(0, top * 1.45)  # headroom for the mark labels and failure ticks
    ax.set_ylabel(f"requests / {BUCKET * 1000:.0f} ms")
    ax.grid(axis="y", alpha=0.3)
    # a single failed request is a thin sliver of bar: tick every bucket that has one so none goes unseen
    hit = bad > 0
    ax.plot(left[hit] + BUCKET / 2, np.full(hit.sum(), top * 1.08), linestyle="none", marker="v",
            markersize=6, color=FAIL_COLOR)

    gap_from, gap_to = result.longest_gap_span()
    gap = gap_to - gap_from
    for a in (ax, lat):
        a.axvspan(gap_from, gap_to, color=GAP_COLOR, alpha=0.12, linewidth=0, zorder=0)  # behind the bars

    for i, (t, label) in enumerate(result.marks):
        for a in (ax, lat):
            a.axvline(t, color=MARK_COLOR, linestyle="--", linewidth=1)
        # alternate heights so close marks do not overprint each other
        y = 0.98 if i % 2 == 0 else 0.87
        ax.text(t, y, f" {label}", transform=ax.get_xaxis_transform(), fontsize=8.5, va="top", ha="left",
                color=MARK_COLOR, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})

    lat.plot(left + BUCKET / 2, worst, color=LATENCY_COLOR, linewidth=1.2, drawstyle="steps-mid")
    lat.set_yscale("log")
    lat.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0)))
    lat.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    lat.yaxis.set_minor_formatter(NullFormatter())
    lat.set_ylabel("max ms", color=LATENCY_COLOR, fontsize=9)
    lat.tick_params(axis="y", colors=LATENCY_COLOR, labelsize=8)
    lat.grid(axis="y", alpha=0.3)

    verdict_color = FAIL_COLOR if result.failed else OK_COLOR
    ax.set_title(f"{name}:  {result.failed} failed of {result.total}   ·   longest gap {gap * 1000:.0f} ms",
                 loc="left", fontsize=11, fontweight="bold", color=verdict_color)
    kinds = result.failures_by_kind()
    if kinds:
        text = "\n".join(f"{k}: {v}" for k, v in kinds.most_common(4))
        ax.text(0.995, 0.97, text, transform=ax.transAxes, fontsize=8, va="top", ha="right", color=FAIL_COLOR,
                bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": FAIL_COLOR, "alpha": 0.9})


def plot_runs(runs: Sequence[tuple[str, LoadResult]], path: Path, title: str) -> Path:
    """Draw one panel per (strategy name, result) on a shared time axis and save it as a PNG at `path`."""
    if not runs:
        raise ValueError("nothing to plot")
    end = max(max((r.end for r in res.records), default=0.0) for _, res in runs)
    end = max(end, *(t for _, res in runs for t, _ in res.marks), BUCKET)
    fig = Figure(figsize=(12, 1.0 + 3.3 * len(runs)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2 * len(runs), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": [3.2, 1] * len(runs)})[:, 0]
    for i, (name, result) in enumerate(runs):
        _panel(axes[2 * i], axes[2 * i + 1], name, result, end)
    axes[0].set_xlim(0, end)
    axes[-1].set_xlabel("seconds since the load started (requests counted by their start)")
    fig.suptitle(title, fontsize=13)
    fig.legend(handles=[Patch(color=OK_COLOR, label="success"), Patch(color=FAIL_COLOR, label="failure (▼ marks any)"),
                        Patch(color=GAP_COLOR, alpha=0.15, label="longest gap without a successful response"),
                        Line2D([], [], color=LATENCY_COLOR, label="slowest successful response per bucket")],
               loc="outside lower center", ncols=4, frameon=False, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _synthetic(seed: int, seconds: float, rate: float, marks: list[tuple[float, str]],
               failures: list[tuple[float, float, int | None, str | None]],
               slow: list[tuple[float, float, float]]) -> LoadResult:
    """A run as the generator would record it: `failures` are (from, to, status, error) spans,
    `slow` are (from, to, extra seconds) spans of added latency."""
    from integration.load import LoadResult, Record

    rnd = random.Random(seed)
    records = []
    for i in range(int(seconds * rate)):
        start = i / rate + rnd.uniform(0, 0.002)
        latency = rnd.lognormvariate(-6.3, 0.4)  # ~2 ms
        status: int | None = 200
        error: str | None = None
        for a, b, extra in slow:
            if a <= start < b:
                latency += extra * rnd.random()
        for a, b, st, err in failures:
            if a <= start < b:
                status, error = st, err
                latency = 0.0005 if err else 0.003
        records.append(Record(start=start, latency=latency, status=status, error=error, path="/api/version"))
    return LoadResult(records=records, marks=marks, duration=seconds, rate=rate, workers=16, connects=16)


def demo(path: Path) -> Path:
    """Three made-up runs that show what each kind of result looks like."""
    recreate = _synthetic(1, 12, 200, [(2.0, "deploy"), (3.1, "old backend stopped"), (5.6, "new backend healthy")],
                          [(3.1, 3.15, None, "RemoteDisconnected"), (3.15, 5.7, 502, None)], [(5.6, 6.0, 0.05)])
    traefik = _synthetic(2, 12, 200, [(2.0, "deploy"), (5.5, "new backend healthy"), (5.7, "switch"),
                                      (8.2, "old backend stopped")], [], [(5.7, 6.0, 0.04)])
    caddy = _synthetic(3, 12, 200, [(2.0, "deploy"), (5.4, "new backend healthy"), (5.6, "switch"),
                                    (8.0, "old backend stopped")], [(5.6, 5.615, 502, None)], [(5.6, 5.9, 0.08)])
    return plot_runs([("recreate", recreate), ("zero-downtime · traefik", traefik), ("zero-downtime · caddy", caddy)],
                     path, "Demo (synthetic data): 200 req/s during a backend deploy")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "tests"))  # the instrument lives with the integration tests
    print(demo(ROOT / "bench" / "out" / "demo.png"))
