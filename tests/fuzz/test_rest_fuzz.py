"""schemathesis against both OpenAPI documents the gateway serves (8002's audit REST and
8001's user REST), in front of the real services: no request may get a 5xx.

Bounded and repeatable: a fixed seed and FUZZ_EXAMPLES examples per operation (a few in
`make test`, many more in `make fuzz`). Left out: the server-streaming `watch` path
(it answers 200, then streams until the client leaves) and `PATCH
/api/v1/users/{user.user_id}`, whose dotted path parameter (valid OpenAPI, as
grpc-gateway writes it) schemathesis 4.32 cannot fill: it reports a schema error, and
its coverage phase fails on the user document's other paths for the same reason, so
that document gets the examples and fuzzing phases only.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.fuzz.conftest import FuzzMesh

SEED = 20261202
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


PHASES = os.environ.get("FUZZ_PHASES", "examples,fuzzing")
LEFT_OUT = {
    "audit": ("--exclude-path-regex", "/watch$", "--phases", PHASES),
    "user": ("--exclude-operation-id", "UserService_UpdateUser", "--phases", "examples,fuzzing"),
}


@pytest.mark.parametrize("listener", ["audit", "user"])
async def test_no_rest_request_gets_a_server_error(
    fuzz_mesh: FuzzMesh, listener: str, tmp_path: Path
) -> None:
    port = fuzz_mesh.audit_rest if listener == "audit" else fuzz_mesh.user_rest
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "run",
        f"http://127.0.0.1:{port}/openapi.json",
        "--checks", "not_a_server_error",
        "--max-examples", str(EXAMPLES),
        "--seed", str(SEED),
        *LEFT_OUT[listener],
        "--workers", "1",
        "--request-timeout", "20",
        "--suppress-health-check", "all",
        "--no-color",
        cwd=tmp_path,
        env={**os.environ, "NO_PROXY": "*", "SCHEMATHESIS_HOOKS": ""},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
