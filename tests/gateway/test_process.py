"""`python -m gateway` as `make up` runs it: ready when /openapi.json answers on every
listener, a clean exit on SIGTERM, and a clear failure when a port is taken."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from devstack import free_ports
from tests.testkit import tls

ROOT = Path(__file__).resolve().parents[2]
START_LIMIT = 30.0  # bounded wait for readiness; not a timing assertion


def environment(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    given = {f"GATEWAY_{k.upper()}": v for k, v in values.items()}
    return {**env, **tls.env_of("GATEWAY_", "gateway"), **given}


def wait_ready(process: subprocess.Popen[str], urls: list[str]) -> None:
    deadline = time.monotonic() + START_LIMIT
    pending = list(urls)
    while pending:
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, f"not ready: {pending}"
        try:
            if httpx.get(pending[0], trust_env=False).status_code == 200:
                pending.pop(0)
                continue
        except httpx.TransportError:
            pass
        time.sleep(0.05)


def test_serves_until_sigterm() -> None:
    audit, user, nothing = free_ports(3)
    env = environment(
        ports=f"audit={audit},user={user}",
        upstreams=f"audit=127.0.0.1:{nothing},user=127.0.0.1:{nothing}",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway"], env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_ready(process, [f"http://127.0.0.1:{p}/openapi.json" for p in (audit, user)])
        down = httpx.get(f"http://127.0.0.1:{audit}/api/v2/events/health", trust_env=False)
        assert down.status_code == 503
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=START_LIMIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    records = [json.loads(line) for line in stderr.splitlines()]
    assert any(r["message"] == "gateway stopped" for r in records)
    served = [r for r in records if r["logger"] == "gateway.transcoder"]
    assert served[0]["listener"] == "audit" and served[0]["request_id"]


def test_a_taken_port_is_named() -> None:
    audit, user = free_ports(2)
    with socket.create_server(("127.0.0.1", audit)):
        result = subprocess.run(
            [sys.executable, "-m", "gateway"],
            env=environment(ports=f"audit={audit},user={user}"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=START_LIMIT,
        )
    assert result.returncode == 1
    assert f"listener audit cannot listen on 127.0.0.1:{audit}" in result.stderr
    assert "GATEWAY_PORTS=audit=<port>" in result.stderr


def test_bad_settings_are_refused_before_starting() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway"],
        env=environment(ports="audit", log_format="xml"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=START_LIMIT,
    )
    assert result.returncode == 2
    assert "GATEWAY_PORTS" in result.stderr and "GATEWAY_LOG_FORMAT" in result.stderr
