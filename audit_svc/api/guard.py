"""The one place a servicer asks who is calling and whether they may read: the call's
principal (audit_svc.api.identity), the role check, and the `audit.read` record of
each read (audit_svc.read.audited), with the request's filters as proto JSON."""

from __future__ import annotations

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from audit_svc.access import Principal
from audit_svc.access.authn import DEV_MODE_BANNER, Authenticator
from audit_svc.api.identity import principal_of
from audit_svc.read.audited import ReadAudit, authorize


class Guard:
    """Identifies callers, checks read roles, records reads."""

    def __init__(self, authenticator: Authenticator, audit: ReadAudit) -> None:
        self._authenticator = authenticator
        self._audit = audit

    @property
    def notice(self) -> str:
        """The banner Health shows: dev mode's, or empty."""
        return DEV_MODE_BANNER if self._authenticator.dev_mode else ""

    def principal(self, context: grpc.aio.ServicerContext) -> Principal:
        """The caller; UNAUTHENTICATED when it has no credentials we accept."""
        return principal_of(self._authenticator, context)

    def reader(self, context: grpc.aio.ServicerContext, role: str) -> Principal:
        """The caller, if it holds `role`; PERMISSION_DENIED (MISSING_ROLE) if not."""
        principal = self.principal(context)
        authorize(principal, role)
        return principal

    def record(self, principal: Principal, method: str, request: Message, results: int) -> None:
        """One `audit.read` event for this read (queued, not awaited)."""
        filters = json_format.MessageToDict(request, preserving_proto_field_name=True)
        self._audit.record(principal, method, filters, results)
