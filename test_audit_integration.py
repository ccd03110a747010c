#!/usr/bin/env python3
"""End-to-end check of a running mesh, as the integration guide runs it:

    make up
    python test_audit_integration.py [--user-url http://localhost:8001] [--audit-url http://localhost:8002]

It drives user actions over REST on the user-service (8001) and finds each audit event
over REST on the audit-service (8002), printing PASS or FAIL per step; the exit status
is the number of failed steps. Only the standard library is used, so any Python 3.11
runs it. Every run registers a fresh account, so it can be repeated.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

USER_AGENT = "audit-integration-test/1.0"
# The audit client ships events in batches; give each one this long to be stored.
EVENT_WAIT_SECONDS = 15.0


class Failed(Exception):
    """A step did not see what it should have."""


class Rest:
    """A tiny JSON-over-HTTP client (urllib) that returns (status, body)."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def call(
        self, method: str, path: str, body: Any = None, token: str = ""
    ) -> tuple[int, dict[str, Any]]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("User-Agent", USER_AGENT)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        return status, json.loads(raw) if raw else {}


def totp(secret: str, at: float | None = None) -> str:
    """RFC 6238 code (SHA-1, 6 digits, 30 s) of a base32 secret."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    counter = int((time.time() if at is None else at) // 30)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


class Scenario:
    """The steps, in order; each records one PASS or FAIL line."""

    def __init__(self, users: Rest, audit: Rest) -> None:
        self.users = users
        self.audit = audit
        suffix = uuid.uuid4().hex[:10]
        self.username = f"it_{suffix}"
        self.email = f"it_{suffix}@example.com"
        self.password = f"Correct-Horse-{suffix}"
        self.user_id = ""
        self.access = ""
        self.refresh = ""
        self.failures = 0

    def step(self, name: str, action: Callable[[], str]) -> None:
        try:
            detail = action()
        except (Failed, OSError, KeyError, ValueError) as error:
            self.failures += 1
            print(f"FAIL  {name}: {error}")
        else:
            print(f"PASS  {name}{': ' + detail if detail else ''}")

    def expect(self, status: int, body: dict[str, Any], want: int, what: str) -> None:
        if status != want:
            raise Failed(f"{what}: HTTP {status} (want {want}): {json.dumps(body)[:300]}")

    def find_event(self, event_type: str, **fields: Any) -> dict[str, Any]:
        """Poll the audit-service until an event of this user and type appears."""
        query = urllib.parse.urlencode({"user_id": self.user_id, "event_type": event_type})
        deadline = time.monotonic() + EVENT_WAIT_SECONDS
        while True:
            status, body = self.audit.call("GET", f"/api/v2/events/query?{query}")
            self.expect(status, body, 200, "query")
            for event in body.get("events", []):
                if all(event.get(k) == v for k, v in fields.items()):
                    return dict(event)
            if time.monotonic() > deadline:
                raise Failed(f"no {event_type} event with {fields} within {EVENT_WAIT_SECONDS} s")
            time.sleep(0.25)

    def audited(self, event_type: str, **fields: Any) -> str:
        event = self.find_event(event_type, **fields)
        if event.get("user_agent") != USER_AGENT:
            raise Failed(f"{event_type} has user_agent {event.get('user_agent')!r}")
        if not event.get("ip_address"):
            raise Failed(f"{event_type} has no ip_address")
        seq = event.get("receipt", {}).get("seq", "?")
        return f"{event_type} stored (seq {seq}, from {event['ip_address']})"

    # --- the steps -------------------------------------------------------------

    def health(self) -> str:
        for name, rest, path in (
            ("user-service", self.users, "/health"),
            ("audit-service", self.audit, "/api/v2/events/health"),
        ):
            status, body = rest.call("GET", path)
            self.expect(status, body, 200, f"{name} health")
            if body.get("status") != "SERVING":
                raise Failed(f"{name} says {body.get('status')!r}")
        return "both SERVING"

    def register(self) -> str:
        status, body = self.users.call(
            "POST",
            "/api/v1/auth/register",
            {"username": self.username, "email": self.email, "password": self.password},
        )
        self.expect(status, body, 200, "register")
        self.user_id = body["user"]["user_id"]
        return self.audited("user.user_created", result="success")

    def failed_login(self) -> str:
        status, body = self.users.call(
            "POST", "/api/v1/auth/login", {"username": self.username, "password": "wrong-one!"}
        )
        self.expect(status, body, 401, "login with a wrong password")
        return self.audited("auth.login_failed", result="failure")

    def login(self) -> str:
        status, body = self.users.call(
            "POST", "/api/v1/auth/login", {"username": self.username, "password": self.password}
        )
        self.expect(status, body, 200, "login")
        self.access, self.refresh = body["access_token"], body["refresh_token"]
        return self.audited("auth.login_success", result="success")

    def refresh_token(self) -> str:
        status, body = self.users.call(
            "POST", "/api/v1/auth/refresh", {"refresh_token": self.refresh}
        )
        self.expect(status, body, 200, "refresh")
        self.access, self.refresh = body["access_token"], body["refresh_token"]
        return self.audited("auth.token_refresh")

    def update_profile(self) -> str:
        status, body = self.users.call(
            "PATCH",
            f"/api/v1/users/{self.user_id}?update_mask=display_name",
            {"display_name": "Integration Test"},
            token=self.access,
        )
        self.expect(status, body, 200, "update")
        return self.audited("user.user_updated")

    def mfa(self) -> str:
        path = f"/api/v1/users/{self.user_id}/mfa"
        status, body = self.users.call("POST", f"{path}:enable", {}, token=self.access)
        self.expect(status, body, 200, "enable MFA")
        secret = body["secret"]
        status, body = self.users.call(
            "POST", f"{path}:verify", {"totp_code": totp(secret)}, token=self.access
        )
        self.expect(status, body, 200, "verify MFA")
        self.audited("mfa.mfa_enabled")
        self.audited("mfa.mfa_verified")
        # The code just used is spent; disable with the next step's code.
        status, body = self.users.call(
            "POST", f"{path}:disable", {"totp_code": totp(secret, time.time() + 30)},
            token=self.access,
        )  # fmt: skip
        self.expect(status, body, 200, "disable MFA")
        return self.audited("mfa.mfa_disabled") + "; enabled and verified too"

    def change_password(self) -> str:
        new = self.password + "-2"
        status, body = self.users.call(
            "POST",
            "/api/v1/auth/password/change",
            {"current_password": self.password, "new_password": new},
            token=self.access,
        )
        self.expect(status, body, 200, "change password")
        self.password = new
        return self.audited("password.password_changed")

    def reset_request(self) -> str:
        status, body = self.users.call("POST", "/api/v1/auth/password/reset", {"email": self.email})
        self.expect(status, body, 200, "password reset request")
        return self.audited("password.password_reset_requested")

    def logout(self) -> str:
        status, body = self.users.call(
            "POST", "/api/v1/auth/logout", {"refresh_token": self.refresh}, token=self.access
        )
        self.expect(status, body, 200, "logout")
        return self.audited("auth.logout")

    def no_secret_leaked(self) -> str:
        query = urllib.parse.urlencode({"user_id": self.user_id, "limit": 1000})
        status, body = self.audit.call("GET", f"/api/v2/events/query?{query}")
        self.expect(status, body, 200, "query")
        text = json.dumps(body)
        for secret in (self.password, self.access, self.refresh):
            if secret and secret in text:
                raise Failed("a password or token appears in an audit event")
        return f"{len(body.get('events', []))} events of this user, no secret in any"

    def integrity(self) -> str:
        status, body = self.audit.call("GET", "/api/v2/integrity/verify")
        self.expect(status, body, 200, "verify")
        if not body.get("ok"):
            raise Failed(f"chain does not verify: {json.dumps(body)}")
        return f"chain {body.get('chain_id')} verifies ({body.get('events_checked')} events)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user-url", default="http://localhost:8001")
    parser.add_argument("--audit-url", default="http://localhost:8002")
    args = parser.parse_args()
    run = Scenario(Rest(args.user_url), Rest(args.audit_url))
    print(f"user-service {args.user_url}, audit-service {args.audit_url}, user {run.username}")
    run.step("services are healthy", run.health)
    if run.failures:
        print("the mesh is not up: run `make up` first")
        return run.failures
    for name, action in [
        ("register -> user.user_created", run.register),
        ("wrong password -> auth.login_failed", run.failed_login),
        ("login -> auth.login_success", run.login),
        ("refresh -> auth.token_refresh", run.refresh_token),
        ("update profile -> user.user_updated", run.update_profile),
        ("MFA enable, verify, disable -> mfa.*", run.mfa),
        ("change password -> password.password_changed", run.change_password),
        ("reset request -> password.password_reset_requested", run.reset_request),
        ("logout -> auth.logout", run.logout),
        ("no secret in any event", run.no_secret_leaked),
        ("hash chain verifies", run.integrity),
    ]:
        if not run.user_id and name != "register -> user.user_created":
            print(f"SKIP  {name}: no account")
            continue
        run.step(name, action)
    print("all steps passed" if not run.failures else f"{run.failures} step(s) failed")
    return run.failures


if __name__ == "__main__":
    sys.exit(main())
