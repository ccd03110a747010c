"""Go's reference implementation of signed notes and tlog proofs, as a test oracle:
`GoVerifier.check(document)` runs main.go's checks on a JSON document."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

SOURCE = Path(__file__).with_name("main.go")
GOPATH = "/usr/share/gocode"  # where Debian's golang-golang-x-mod-dev installs


class GoVerifier:
    """The built main.go."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary

    def check(self, document: dict[str, Any]) -> str:
        """Run the checks; the program's one-line verdict ("ok" when all pass)."""
        done = subprocess.run(
            [str(self.binary)], input=json.dumps(document), capture_output=True, text=True,
            check=False, timeout=60,
        )  # fmt: skip
        return (done.stdout + done.stderr).strip()


def build(workdir: Path) -> GoVerifier:
    """Build main.go offline in GOPATH mode against Debian's x/mod; skip the test
    (saying why) where Go or x/mod is not installed."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not installed (Debian golang-go; scripts/setup.sh installs it)")
    if not Path(GOPATH, "src/golang.org/x/mod/sumdb/tlog").is_dir():
        pytest.skip("golang.org/x/mod is not installed (Debian golang-golang-x-mod-dev)")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(workdir),
        "GO111MODULE": "off",
        "GOPATH": GOPATH,
        "GOCACHE": str(workdir / "cache"),
        "GOPROXY": "off",
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }
    binary = workdir / "verify-tlog"
    shutil.copy(SOURCE, workdir / "main.go")
    subprocess.run(
        [go, "build", "-o", str(binary), "main.go"], cwd=workdir, env=env, check=True,
        capture_output=True, timeout=300,
    )  # fmt: skip
    return GoVerifier(binary)
