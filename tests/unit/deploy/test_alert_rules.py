"""The alert rules: every metric they use is one rewind exports; promtool checks them and runs their
unit tests (each alert fires on the series it is written for and stays quiet on a healthy one)."""

from __future__ import annotations

import shutil
import subprocess

import yaml

from tests.unit.deploy.exported import DEPLOY, METRIC, unknown_metrics

RULES = DEPLOY / "prometheus" / "rewind-rules.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "rewind-rules.test.yaml"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/bootstrap.sh installs Debian's prometheus package"
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, check=False)


def _rules() -> list[dict[str, str]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_rules_reference_only_exported_metrics() -> None:
    rules = _rules()
    assert rules
    for rule in rules:
        assert METRIC.search(rule["expr"]), rule["alert"]
        assert not unknown_metrics(rule["expr"]), f"{rule['alert']}: {unknown_metrics(rule['expr'])}"


def test_promtool_checks_the_rules() -> None:
    checked = _promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in checked.stdout


def test_every_alert_has_unit_tests_that_fire_it_and_keep_it_quiet() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [case for t in tests for case in t["alert_rule_test"]]
    for rule in _rules():
        mine = [c for c in cases if c["alertname"] == rule["alert"]]
        assert any(c["exp_alerts"] for c in mine), f"no test makes {rule['alert']} fire"
        assert any(not c["exp_alerts"] for c in mine), f"no test keeps {rule['alert']} quiet"
    ran = _promtool("test", "rules", str(RULE_TESTS))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "SUCCESS" in ran.stdout
