"""The dashboard's panels drawn from a real Prometheus's data (Grafana is not installable here): each
panel's queries over a time range, one small chart per panel, laid out as the dashboard's rows."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
COLUMNS = 4


def _range(base: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": 1})
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{query}", timeout=30) as response:
        result: list[dict[str, Any]] = json.loads(response.read())["data"]["result"]
        return result


def _label(legend: str, metric: dict[str, str]) -> str:
    if not legend or legend == "__auto":
        return ",".join(f"{k}={v}" for k, v in metric.items() if k != "__name__") or "value"
    return LEGEND.sub(lambda m: metric.get(m.group(1), ""), legend)


def render(board: dict[str, Any], base: str, start: float, end: float, out: Path, rate: str) -> int:
    """Draw every panel; returns how many series were drawn."""
    panels = [p for p in board["panels"] if p["type"] != "row"]
    rows = -(-len(panels) // COLUMNS)
    fig, axes = plt.subplots(rows, COLUMNS, figsize=(4.2 * COLUMNS, 2.6 * rows), squeeze=False)
    drawn = 0
    for ax, panel in zip(axes.flat, panels, strict=False):
        for target in panel.get("targets", []):
            for series in _range(base, target["expr"].replace("$__rate_interval", rate), start, end):
                points = [
                    (float(t) - start, float(v)) for t, v in series["values"] if v not in ("NaN", "+Inf")
                ]
                if points:
                    ax.plot(
                        *zip(*points, strict=True),
                        label=_label(target.get("legendFormat", ""), series["metric"]),
                    )
                    drawn += 1
        ax.set_title(panel["title"], fontsize=9)
        ax.tick_params(labelsize=7)
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        ax.set_xlabel(f"seconds{' · ' + unit if unit not in ('', 'short') else ''}", fontsize=7)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="upper left")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(f"{board['title']} (drawn from a real Prometheus scraping rewind run)", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return drawn
