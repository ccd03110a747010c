"""SIEM formats of stored events: the service's own NDJSON and CSV, OCSF, CEF and ECS.
Exports (audit_svc.read.export) and the forwarders (audit_svc.sinks.syslog, .webhook)
write events with these; plain functions of a `StoredEvent`, no I/O.

Each output says its format's version: `FORMAT_VERSION` is the version of this
mapping (bumped when a field moves), carried in each line or row (see each module).
"""

from audit_svc.formats.base import FORMAT_VERSION, FORMATS, Format, by_name, names
from audit_svc.formats.cef import cef_line
from audit_svc.formats.ecs import ecs_doc
from audit_svc.formats.flat import event_doc
from audit_svc.formats.ocsf import ocsf_doc

__all__ = [
    "FORMATS",
    "FORMAT_VERSION",
    "Format",
    "by_name",
    "cef_line",
    "ecs_doc",
    "event_doc",
    "names",
    "ocsf_doc",
]
