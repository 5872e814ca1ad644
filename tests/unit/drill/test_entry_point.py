"""A drill without the services' entry point is refused before anything is sent, naming the setting."""

from __future__ import annotations

import threading

import pytest
from click.testing import CliRunner

from processor.catalog.catalog import Catalog
from processor.cli import main
from processor.config import Settings
from processor.drill.runner import DrillRunner
from processor.errors import ConfigError


def test_a_drill_without_an_entry_point_names_the_setting_to_set() -> None:
    runner = DrillRunner(
        Settings(bootstrap_servers="127.0.0.1:1", metrics_port=0), "127.0.0.1:1", Catalog.empty()
    )
    with pytest.raises(ConfigError) as refused:
        runner.run("all", threading.Event())
    assert "REWIND_DRILL__ENTRY_TOPIC" in (refused.value.hint or "")


def test_rewind_drill_refuses_without_an_entry_point_and_an_unknown_mechanism() -> None:
    env = {"REWIND_BOOTSTRAP_SERVERS": "127.0.0.1:1", "REWIND_METRICS_PORT": "0"}
    refused = CliRunner().invoke(main, ["drill"], env=env)
    assert refused.exit_code == 1 and "REWIND_DRILL__ENTRY_TOPIC" in refused.output
    unknown = CliRunner().invoke(main, ["drill", "--mechanism", "magic"], env=env)
    assert unknown.exit_code == 2 and "magic" in unknown.output
