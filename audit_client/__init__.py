"""The audit client library: every service ships its audit events through it.

    from audit_client import AuditClient, ClientSettings

    async with AuditClient(ClientSettings.from_env()) as client:
        await client.emit(event)  # an audit.v2.AuditEvent; returns its event_id

See README.md in this folder for the delivery guarantees, the spool and the defaults.
"""

from audit_client.breaker import BreakerState
from audit_client.client import AuditClient
from audit_client.counters import ClientStats
from audit_client.errors import (
    AuditClientError,
    AuditUnavailable,
    ClientClosed,
    InvalidEvent,
    SettingsError,
)
from audit_client.settings import FAIL_CLOSED, FAIL_OPEN, ClientSettings
from audit_client.sync import SyncAuditClient

__all__ = [
    "FAIL_CLOSED",
    "FAIL_OPEN",
    "AuditClient",
    "AuditClientError",
    "AuditUnavailable",
    "BreakerState",
    "ClientClosed",
    "ClientSettings",
    "ClientStats",
    "InvalidEvent",
    "SettingsError",
    "SyncAuditClient",
]
