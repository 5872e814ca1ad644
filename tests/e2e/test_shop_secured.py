"""`rewind demo --secure`: the demo's repair on a secured broker it starts itself (SASL/SCRAM-SHA-512
over TLS, StandardAuthorizer, no ACL no access). Every part of rewind runs on its own principal with only
what `rewind acl apply` grants it: the tap, the graph builder, the worker, the operator who asks, the
approver who agrees; the shop's services run as the service principal. The world must still end where
the fix was always in place, and the audit name who asked and who agreed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from examples.shop.scenario import APPROVER, OPERATOR, ROLES
from processor.config import PrincipalSettings
from processor.devenv.procs import free_port

ORDERS = int(os.environ.get("REWIND_SHOP_SECURED_ORDERS", "200"))


def test_the_demo_repairs_on_a_secured_broker_with_every_part_on_its_own_principal(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REWIND_")}
    env |= {
        "REWIND_POSTGRES__PORT": str(free_port()), "REWIND_CONNECT__REST_PORT": str(free_port()),
        "REWIND_METRICS_PORT": "0",
    }  # fmt: skip
    command = [
        "demo",
        "--secure",
        "--orders",
        str(ORDERS),
        "--picture",
        str(tmp_path / "a.svg"),
        "--format",
        "json",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "processor.cli", *command], env=env, capture_output=True, text=True, timeout=900,
        check=False,
    )  # fmt: skip
    said = result.stderr
    assert result.returncode == 0, said[-6000:]
    assert "(SASL/SCRAM over TLS, ACLs enforced)" in said
    principals = PrincipalSettings().roles()
    assert ", ".join(f"{role} as {principals[role]}" for role in ROLES) in said

    report = json.loads(result.stdout)
    assert report["proved"], report["checks"]
    status = report["status"]
    assert status["state"] == "REPAIRED", status["reason"]
    assert status["requested_key"] == OPERATOR
    assert [a["key_id"] for a in status["approvals"]] == [APPROVER]
    assert {a["plan_hash"] for a in status["approvals"]} == {status["plan_hash"]}
