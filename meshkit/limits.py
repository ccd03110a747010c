"""The limits the services enforce on request fields, in one table.

Validation code reads its bounds and patterns from here (user_svc/validation.py,
audit_svc/ingest/validation.py), and the OpenAPI documents (gateway/openapi.py, so
both the gateway's and Envoy's) print the same values on the same fields: what a
client or a fuzzer reads is what the service checks; they cannot drift.

Each `Limit` says what one value accepts (an item, for repeated fields); patterns
must match the whole value and use only syntax Python's `re` and ECMA-262 read the
same way. `FIELDS` maps proto field full names to their limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Limit:
    """What a field's value accepts; None: no bound of that kind."""

    min_length: int | None = None  # characters
    max_length: int | None = None
    pattern: str | None = None  # the whole value matches
    minimum: int | None = None
    maximum: int | None = None
    max_items: int | None = None  # repeated fields: how many values
    format: str | None = None  # an OpenAPI format (uuid, ipv4...)
    choices: tuple[str, ...] = ()  # the only values accepted

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.0 keywords of one value."""
        out: dict[str, Any] = {}
        for key, value in (
            ("minLength", self.min_length),
            ("maxLength", self.max_length),
            ("minimum", self.minimum),
            ("maximum", self.maximum),
            ("format", self.format),
        ):
            if value is not None:
                out[key] = value
        if self.pattern is not None:
            out["pattern"] = f"^(?:{self.pattern})$"
        if self.choices:
            out["enum"] = list(self.choices)
        return out


# Characters no free-text field may hold: C0 and C1 controls (NUL included: PostgreSQL
# text cannot hold it) and the Unicode line separators.
CONTROLS = "\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029"
NO_CONTROLS = f"[^{CONTROLS}]*"
NO_NUL = "[^\\x00]*"

# user-service
USERNAME = Limit(min_length=3, max_length=64, pattern="[A-Za-z0-9._-]{3,64}")
LOGIN_NAME = Limit(max_length=256, pattern=NO_CONTROLS)  # what sign-in accepts
EMAIL = Limit(max_length=254, pattern=f"[^@\\s{CONTROLS}]+@[^@\\s{CONTROLS}]+\\.[^@\\s{CONTROLS}]+")
PASSWORD = Limit(max_length=1024)  # argon2 hashes what it is given: a bound on the cost
NEW_PASSWORD = Limit(min_length=12, max_length=1024)
DISPLAY_NAME = Limit(max_length=128, pattern=NO_CONTROLS)
LOCK_REASON = Limit(max_length=256, pattern=NO_CONTROLS)
TOKEN = Limit(max_length=512)
TOTP_CODE = Limit(pattern="[0-9]{6}")
ROLE = Limit(max_length=64, pattern="[a-z][a-z0-9_.-]{0,63}")
PERMISSION = Limit(max_length=128, pattern="[a-z][a-z0-9_-]*(\\.[a-z0-9_*-]+){0,7}")
USER_ID = Limit(format="uuid")
PAGE_SIZE = Limit(minimum=0)  # 0: the default; larger than the cap: the cap

# audit-service: the event
EVENT_TYPE = Limit(max_length=128, pattern="[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+")
NAME = Limit(max_length=128, pattern="[a-z0-9][a-z0-9_.\\-]*")  # service, action
# Who the event is about: no control characters; the user agent is free text (no NUL).
EVENT_TEXT = {"user_id": (256, NO_CONTROLS), "username": (256, NO_CONTROLS),
              "user_agent": (1024, NO_NUL)}  # fmt: skip
COMPLIANCE_TAG = Limit(min_length=1, max_length=64, pattern=NO_CONTROLS, max_items=32)
RESULT = Limit(choices=("denied", "error", "failure", "success"))
CLASSIFICATION = Limit(choices=("confidential", "internal", "public", "restricted"))
BATCH = Limit(max_items=1000)

_USER = "user.v1."
_EVENT = "audit.v2.AuditEvent."
FIELDS: dict[str, Limit] = {
    f"{_USER}CreateUserRequest.username": USERNAME,
    f"{_USER}CreateUserRequest.email": EMAIL,
    f"{_USER}CreateUserRequest.password": NEW_PASSWORD,
    f"{_USER}CreateUserRequest.display_name": DISPLAY_NAME,
    f"{_USER}User.email": EMAIL,
    f"{_USER}User.display_name": DISPLAY_NAME,
    f"{_USER}ListUsersRequest.page_size": PAGE_SIZE,
    f"{_USER}LockUserRequest.reason": LOCK_REASON,
    f"{_USER}LoginRequest.username": LOGIN_NAME,
    f"{_USER}LoginRequest.password": PASSWORD,
    f"{_USER}LoginRequest.totp_code": TOTP_CODE,
    f"{_USER}LogoutRequest.refresh_token": TOKEN,
    f"{_USER}RefreshTokenRequest.refresh_token": TOKEN,
    f"{_USER}ChangePasswordRequest.current_password": PASSWORD,
    f"{_USER}ChangePasswordRequest.new_password": NEW_PASSWORD,
    f"{_USER}RequestPasswordResetRequest.email": EMAIL,
    f"{_USER}ConfirmPasswordResetRequest.reset_token": TOKEN,
    f"{_USER}ConfirmPasswordResetRequest.new_password": NEW_PASSWORD,
    f"{_USER}VerifyMfaRequest.totp_code": TOTP_CODE,
    f"{_USER}DisableMfaRequest.totp_code": TOTP_CODE,
    f"{_USER}GrantPermissionRequest.permission": PERMISSION,
    f"{_USER}AssignRoleRequest.role": ROLE,
    f"{_USER}RemoveRoleRequest.role": ROLE,
    **{
        f"{_USER}{m}Request.user_id": USER_ID
        for m in (
            "GetUser",
            "DeleteUser",
            "LockUser",
            "UnlockUser",
            "EnableMfa",
            "VerifyMfa",
            "DisableMfa",
            "GrantPermission",
            "AssignRole",
            "RemoveRole",
        )
    },  # fmt: skip
    f"{_EVENT}event_type": EVENT_TYPE,
    f"{_EVENT}service": NAME,
    f"{_EVENT}action": NAME,
    **{f"{_EVENT}{name}": Limit(max_length=n, pattern=p) for name, (n, p) in EVENT_TEXT.items()},
    f"{_EVENT}compliance_tags": COMPLIANCE_TAG,
    f"{_EVENT}result": RESULT,
    f"{_EVENT}data_classification": CLASSIFICATION,
    "audit.v2.IngestBatchRequest.events": BATCH,
    "audit.v2.QueryRequest.page_size": PAGE_SIZE,
    "audit.v2.ListCheckpointsRequest.page_size": PAGE_SIZE,
}
