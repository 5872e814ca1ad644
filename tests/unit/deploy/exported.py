"""What deploy/ may name: the series rewind's metrics registry exports, and the files under deploy/."""

from __future__ import annotations

import re
from pathlib import Path

from processor.metrics import Metrics

DEPLOY = Path(__file__).parents[3] / "deploy"
METRIC = re.compile(r"\brewind_[a-z_]+\b")
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
}


def exported_names() -> set[str]:
    """Every series name the processor's registry can export."""
    return {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in _SUFFIXES.get(family.type, ("",))
    }


def unknown_metrics(expr: str) -> set[str]:
    """The rewind_ names in a PromQL expression that rewind does not export."""
    return set(METRIC.findall(expr)) - exported_names()
