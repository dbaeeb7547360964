"""`--plot`: a PNG of latency percentiles against arrival rate with the objective drawn in.

Invariant: matplotlib is optional (the `bench` extra); without it plot() says so and returns
False, and the run's results are unaffected.
"""

from __future__ import annotations

from pathlib import Path

from .measure import StepResult


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot(path: Path, steps: list[StepResult], slo_ms: float, *, title: str,
         capacity: float | None = None, knee: float | None = None, exclude_429: bool = False) -> bool:
    """Write the latency-vs-rate curve; False when matplotlib is not installed."""
    if not available():
        return False
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    done = sorted((s for s in steps if s.completed and s.rate), key=lambda s: s.rate)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for key, style in (("p50", "-"), ("p90", "-"), ("p99", "-"), ("p99.9", "--"), ("max", ":")):
        lat = [(s.latency_no429_ms if exclude_429 else s.latency_ms).get(key, 0.0) for s in done]
        ax.plot([s.rate for s in done], lat, style, marker="o", markersize=3, label=key)
    ax.axhline(slo_ms, color="red", linewidth=1, label=f"objective p99 ≤ {slo_ms:g} ms")
    if capacity:
        ax.axvline(capacity, color="green", linewidth=1, linestyle="--",
                   label=f"capacity {capacity:,.0f}/s")
    if knee and knee != capacity:
        ax.axvline(knee, color="gray", linewidth=1, linestyle=":", label=f"knee {knee:,.0f}/s")
    ax.set_yscale("log")
    ax.set_xlabel("arrival rate (requests/s, open loop)")
    ax.set_ylabel("latency from scheduled send (ms)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
