"""prometheus/alerts.yml and the Prometheus config of compose.yml, checked by Debian's
promtool: the rules are valid, and each alert fires (or stays quiet) on the series of
prometheus/alerts_test.yml."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "prometheus"


def _promtool(*args: str) -> str:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/setup.sh installs Debian's prometheus"
    run = subprocess.run(
        [promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_alert_rules_are_valid() -> None:
    assert "SUCCESS: 12 rules found" in _promtool("check", "rules", "alerts.yml")


def test_alerts_fire_on_trouble_and_stay_quiet_otherwise() -> None:
    assert "SUCCESS" in _promtool("test", "rules", "alerts_test.yml")


def test_the_compose_prometheus_config_is_valid() -> None:
    _promtool("check", "config", "--syntax-only", "prometheus.yml")
