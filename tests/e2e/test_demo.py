"""The README's main command: `rewind demo` starts a broker, PostgreSQL and Debezium itself, runs the
shop scenario, proves the result against the oracle world, draws the picture, and stops everything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from processor.devenv.procs import free_port


def test_the_demo_runs_the_scenario_and_stops_what_it_started(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REWIND_")}
    env |= {
        "REWIND_LOCAL_BROKER__PORT": str(free_port()), "REWIND_LOCAL_BROKER__CONTROLLER_PORT": str(free_port()),
        "REWIND_LOCAL_BROKER__DATA_DIR": str(tmp_path / "broker"), "REWIND_POSTGRES__PORT": str(free_port()),
        "REWIND_CONNECT__REST_PORT": str(free_port()), "REWIND_METRICS_PORT": "0",
    }  # fmt: skip
    picture = tmp_path / "affected.svg"
    result = subprocess.run(
        [sys.executable, "-m", "processor.cli", "demo", "--orders", "100", "--picture", str(picture)],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-4000:]
    assert "rollback: REPAIRED: all 150 steps undone and verified; 25 inputs re-driven and confirmed" in out
    assert "repair: 25 of 25 requests re-driven to pricing and confirmed" in out
    assert "blast radius" in out and "verification: 0 differences" in out
    assert "NO" not in out.split("the shop against the oracle world")[1]
    assert picture.read_text().startswith("<?xml") and "OrderPriced" in picture.read_text()
    assert "stopped: Connect, PostgreSQL and the broker this demo started" in out
    status = subprocess.run([sys.executable, "-m", "processor.cli", "kafka", "status"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert status.returncode == 1, "the demo must stop the broker it started"
