"""ArcSight Common Event Format (CEF:0), as the forwarders send over syslog:

    CEF:0|auditmesh|audit-service|<version>|<event_type>|<action>|<severity>|<extension>

Header fields escape `\\` and `|` (and turn line breaks into spaces); extension
values escape `\\`, `=`, and line breaks as `\\n` / `\\r`, per the CEF spec.
Extension keys: `rt` (receipt, ms), `end` (event time, ms), `externalId` (event id),
`suid`/`suser` (user), `src` (IP), `requestClientApplication` (user agent), `act`,
`outcome`, `cat` (event type), `dvchost` (service), `msg` (details as JSON), and
custom strings with their labels: cs1 chain, cn1 seq, cs2 hash, cs3 compliance tags,
cs4 classification, cs5 writer (principal), cs6 format (`auditmesh.cef/1`).
"""

from __future__ import annotations

from audit_svc import __version__
from audit_svc.formats.base import Format, dumps, register, text_line, version_tag
from audit_svc.formats.classify import millis, outcome, severity
from audit_svc.model import StoredEvent

CEF_TAG = version_tag("cef")
# OCSF severity (1..4) on CEF's 0..10 scale.
CEF_SEVERITY = {0: 0, 1: 3, 2: 5, 3: 6, 4: 8, 5: 10, 6: 10, 99: 5}


def header_escape(text: str) -> str:
    """A CEF header field: backslash and pipe escaped, no line breaks."""
    return (
        text.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", " ").replace("\n", " ")
        .replace("\r", " ")
    )  # fmt: skip


def value_escape(text: str) -> str:
    """A CEF extension value: backslash, equals sign and line breaks escaped."""
    return (
        text.replace("\\", "\\\\").replace("=", "\\=").replace("\r\n", "\\n").replace("\n", "\\n")
        .replace("\r", "\\r")
    )  # fmt: skip


def cef_line(s: StoredEvent) -> str:
    """The CEF record of a stored event (one line)."""
    e, r = s.event, s.receipt
    header = "|".join(
        (
            "CEF:0",
            "auditmesh",
            "audit-service",
            __version__,
            header_escape(e.event_type),
            header_escape(e.action or e.event_type),
            str(CEF_SEVERITY[severity(e)]),
        )
    )
    ext: list[tuple[str, str]] = [
        ("rt", str(millis(e.receive_time))),
        ("end", str(millis(e.event_time))),
        ("externalId", str(e.event_id)),
        ("cat", e.event_type),
        ("act", e.action),
        ("outcome", outcome(e.result)),
        ("dvchost", e.service),
    ]
    if e.user_id:
        ext.append(("suid", e.user_id))
    if e.username:
        ext.append(("suser", e.username))
    if e.ip_address is not None:
        ext.append(("src", str(e.ip_address)))
    if e.user_agent:
        ext.append(("requestClientApplication", e.user_agent))
    if e.details:
        ext.append(("msg", dumps(e.details)))
    ext += [
        ("cs1Label", "chain"), ("cs1", r.chain_id),
        ("cn1Label", "seq"), ("cn1", str(r.seq)),
        ("cs2Label", "hash"), ("cs2", r.hash.hex()),
        ("cs3Label", "complianceTags"), ("cs3", ",".join(e.compliance_tags)),
        ("cs4Label", "dataClassification"), ("cs4", e.data_classification),
        ("cs5Label", "principal"), ("cs5", e.principal),
        ("cs6Label", "format"), ("cs6", CEF_TAG),
    ]  # fmt: skip
    return header + "|" + " ".join(f"{k}={value_escape(v)}" for k, v in ext)


CEF = register(Format("cef", "text/plain; charset=utf-8", "cef", text_line(cef_line), json=False))
