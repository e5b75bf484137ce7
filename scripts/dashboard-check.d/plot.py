#!/usr/bin/env python3
"""Draws the dashboard's panels from the series scripts/dashboard-check got from Prometheus.

    plot.py SERIES_JSON OUT_PNG      # run with the venv's python (matplotlib)

SERIES_JSON is what the check writes: {"start", "end", "step", "panels": [{"title", "unit", "gridPos",
"targets": [{"legendFormat", "result"}]}]}, each result a Prometheus matrix. One subplot per
panel, laid out as the dashboard's grid (rows by gridPos.y, columns by gridPos.x), titled like the
panel, one line per series, named by the target's legendFormat; time in seconds from the start of
the load.
"""

import json
import math
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

UNITS = {"ops": "per second", "s": "seconds", "short": "", "ms": "milliseconds"}


def legend(fmt, labels):
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt or "")
    return text or "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def gaps(points, step):
    """xs and ys with a NaN wherever Prometheus returned no point for more than a step, so the
    line breaks there as Grafana's does (NaN values, e.g. a quantile of no events, break it too)."""
    xs, ys = [], []
    for t, v in points:
        if xs and t - xs[-1] > 1.5 * step:
            xs.append(xs[-1] + step)
            ys.append(math.nan)
        xs.append(t)
        ys.append(v)
    return xs, ys


def main(series_path, out_path):
    data = json.load(open(series_path))
    panels = data["panels"]
    rows = sorted({p["gridPos"].get("y", 0) for p in panels})
    cols = sorted({p["gridPos"].get("x", 0) for p in panels})
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(6 * len(cols), 2.9 * len(rows)),
                             squeeze=False)
    used = set()
    for panel in panels:
        r = rows.index(panel["gridPos"].get("y", 0))
        c = cols.index(panel["gridPos"].get("x", 0))
        used.add((r, c))
        ax = axes[r][c]
        ax.set_title(panel["title"], fontsize=10, loc="left")
        for target in panel["targets"]:
            for series in target["result"]:
                xs, ys = gaps([(float(t) - data["start"], float(v)) for t, v in series["values"]],
                              data["step"])
                if any(not math.isnan(y) for y in ys):
                    ax.plot(xs, ys, linewidth=1.2,
                            label=legend(target["legendFormat"], series["metric"]))
        ax.set_ylabel(UNITS.get(panel["unit"], panel["unit"]), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.set_xlim(0, data["end"] - data["start"])
        ax.set_ylim(bottom=0)
        if ax.lines:
            ax.legend(fontsize=6, loc="upper left", ncol=2, framealpha=0.6)
    for r in range(len(rows)):
        for c in range(len(cols)):
            if (r, c) not in used:
                axes[r][c].axis("off")
    for c in range(len(cols)):
        axes[-1][c].set_xlabel("seconds since the load started", fontsize=8)
    fig.suptitle("Ferry dashboard (charts/ferry/files/grafana-dashboard.json), "
                 "drawn from Prometheus by scripts/dashboard-check", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_path, dpi=72)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
