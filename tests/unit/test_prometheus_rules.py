"""Every metric the alert rules use is one kafka-rewind exports."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from processor.metrics import Metrics

RULES = Path(__file__).parents[2] / "deploy" / "prometheus" / "rewind-rules.yaml"


def test_rules_reference_only_exported_metrics() -> None:
    metrics = Metrics(CollectorRegistry())
    suffixes = {
        "counter": ["_total"],
        "histogram": ["_bucket", "_count", "_sum"],
        "gauge": [""],
        "info": ["_info"],
    }
    exported = {f.name + s for f in metrics.registry.collect() for s in suffixes[f.type]}
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert rules
    for rule in rules:
        names = set(re.findall(r"\b(rewind_[a-z_]+)\b", rule["expr"]))
        assert names, rule["alert"]
        assert names <= exported, f"{rule['alert']}: {names - exported}"
