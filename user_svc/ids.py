"""Identifiers: UUIDv7 account ids (time-ordered), random session ids."""

from __future__ import annotations

import secrets

from meshkit.ids import uuid7

__all__ = ["session_id", "uuid7"]


def session_id() -> str:
    """An unguessable session id, safe to show in audit events (it grants nothing)."""
    return "sess_" + secrets.token_urlsafe(16)
