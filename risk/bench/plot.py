"""The report-latency plot: reports and RQ's floor against L, 1.3 × L and 1.6 × L."""

from __future__ import annotations

import logging
from pathlib import Path

from risk.bench.results import Run, percentile

log = logging.getLogger(__name__)


def latency_plot(run: Run, path: Path) -> Path | None:
    """Write a PNG of the latency distributions; None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("no plot: matplotlib is not installed (pip install 'presign[bench]')")
        return None
    data = run.data["latency"]
    limit = percentile(data["provider_call_ms"], 50)
    series = [
        ("report: accepted → complete", data["report_ms"], "tab:blue"),
        ("RQ floor: four calls in an empty job", data["rq_floor_ms"], "tab:orange"),
        ("four calls, plain Python", data["plain_python_four_ms"], "tab:green"),
    ]
    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    for label, values, colour in series:
        ordered = sorted(values)
        if not ordered:
            continue
        ys = [(i + 1) / len(ordered) for i in range(len(ordered))]
        ax.step(ordered, ys, where="post", label=f"{label} (p50 {percentile(values, 50):.1f} ms)", color=colour)
    for factor, style, text in ((1.0, "-", "L"), (1.3, "--", "1.3 × L"), (1.6, ":", "1.6 × L")):
        ax.axvline(limit * factor, color="grey", linestyle=style, linewidth=1)
        ax.text(limit * factor, 0.99, f" {text}", color="grey", fontsize=8, rotation=90, va="top")
    ax.axhline(0.5, color="lightgrey", linewidth=0.8)
    ax.axhline(0.95, color="lightgrey", linewidth=0.8)
    top = max(limit * 2.2, percentile(data["report_ms"], 99) * 1.1 if data["report_ms"] else limit * 2.2)
    ax.set_xlim(0, top)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("fraction of requests at or below")
    quick = " (--quick)" if run.quick else ""
    ax.set_title(f"Report latency, {len(data['report_ms'])} reports, providers at L = {data['latency_ms']:g} ms{quick}")
    ax.legend(loc="center left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
