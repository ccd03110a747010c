"""The whole mesh as `make up` starts it (every component, its own processes, on free
ports), exercised by the integration guide's own script, test_audit_integration.py."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import Stack, infra_components
from devstack.mesh import GatewayInfo, mesh_components

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayInfo]:
    components = infra_components(None, fsync=False) + mesh_components(None)
    with Stack(tmp_path_factory.mktemp("mesh"), components) as stack:
        gateway = stack.info("gateway")
        assert isinstance(gateway, GatewayInfo)
        yield gateway


def test_integration_script_passes_every_step_against_the_running_mesh(
    mesh: GatewayInfo,
) -> None:
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "test_audit_integration.py"),
            "--user-url", f"http://127.0.0.1:{mesh.user_port}",
            "--audit-url", f"http://127.0.0.1:{mesh.port}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip

    assert run.returncode == 0, run.stdout + run.stderr
    steps = [line for line in run.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(steps) == 12 and all(line.startswith("PASS") for line in steps), run.stdout
