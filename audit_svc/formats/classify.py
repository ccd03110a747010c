"""What every format derives the same way from an event: its outcome and severity."""

from __future__ import annotations

from datetime import datetime

from audit_svc.model import Event

SUCCESS, FAILURE, UNKNOWN = "success", "failure", "unknown"
_FAILED = frozenset({"failure", "failed", "fail", "denied", "error", "blocked", "rejected"})
_SUCCEEDED = frozenset({"success", "succeeded", "ok", "allowed", "granted"})

# OCSF severity_id: 1 Informational, 2 Low, 3 Medium, 4 High.
INFORMATIONAL, LOW, MEDIUM, HIGH = 1, 2, 3, 4
SEVERITY_NAMES = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High",
                  5: "Critical", 6: "Fatal", 99: "Other"}  # fmt: skip


def outcome(result: str) -> str:
    """success, failure or unknown, from the free-text `result`."""
    text = result.lower()
    if text in _SUCCEEDED:
        return SUCCESS
    if text in _FAILED:
        return FAILURE
    return UNKNOWN


def severity(event: Event) -> int:
    """OCSF severity: security.* is High (a rate limit Medium), a failure Low, the
    rest Informational."""
    if event.event_type.startswith("security."):
        return MEDIUM if "rate_limit" in event.event_type else HIGH
    return LOW if outcome(event.result) == FAILURE else INFORMATIONAL


def millis(t: datetime) -> int:
    """Milliseconds since the epoch (OCSF `time`, CEF `rt`)."""
    return int(t.timestamp() * 1000)
