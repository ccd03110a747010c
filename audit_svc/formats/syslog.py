"""RFC 5424 syslog messages with a CEF payload, octet-counted for TCP (RFC 6587):

    <LEN> <PRI>1 <event time> <host> auditmesh - <event type> [auditmesh@32473
    eventId="..." chain="..." seq="..." hash="..."] CEF:0|auditmesh|...

PRI is facility * 8 + a severity from the event's (security High: 2 critical;
Medium: 4 warning; a failure: 5 notice; else 6 informational). The structured data
carries the event id, so a receiver can drop a resent duplicate. 32473 is the
private enterprise number RFC 5612 reserves for documentation.
"""

from __future__ import annotations

from datetime import UTC

from audit_svc.formats.cef import cef_line
from audit_svc.formats.classify import severity
from audit_svc.model import StoredEvent

SD_ID = "auditmesh@32473"
SYSLOG_SEVERITY = {0: 6, 1: 6, 2: 5, 3: 4, 4: 2, 5: 1, 6: 0, 99: 6}


def _name(text: str, limit: int) -> str:
    """A header field: printable ASCII without spaces, `-` when empty (RFC 5424 6.2)."""
    kept = "".join(c if 33 <= ord(c) <= 126 else "_" for c in text)[:limit]
    return kept or "-"


def _param(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def rfc5424(stored: StoredEvent, *, facility: int, hostname: str, app: str = "auditmesh") -> bytes:
    """One syslog message (without framing)."""
    e, r = stored.event, stored.receipt
    pri = facility * 8 + SYSLOG_SEVERITY[severity(e)]
    when = e.event_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    sd = (
        f'[{SD_ID} eventId="{e.event_id}" chain="{_param(r.chain_id)}" seq="{r.seq}"'
        f' hash="{r.hash.hex()}"]'
    )
    head = f"<{pri}>1 {when} {_name(hostname, 255)} {_name(app, 48)} - {_name(e.event_type, 32)}"
    return f"{head} {sd} {cef_line(stored)}".encode()


def octet_counted(message: bytes) -> bytes:
    """RFC 6587 octet-counting framing: the length, a space, the message."""
    return b"%d %s" % (len(message), message)
