"""Checks of caller input; each returns the problems it finds, named by proto field path."""

from __future__ import annotations

import re
import uuid

from user_svc.errors import InvalidArgument
from user_svc.model import FieldViolation

USERNAME = re.compile(r"[A-Za-z0-9._-]{3,64}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
ROLE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
PERMISSION = re.compile(r"[a-z][a-z0-9_-]*(\.[a-z0-9_*-]+){0,7}")
TOTP_CODE = re.compile(r"[0-9]{6}")
# C0 and C1 controls (NUL included: PostgreSQL text cannot hold it) and the Unicode line
# separators: refused in every free-text field, so none reaches SQL, logs or the audit trail.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MIN_PASSWORD = 12
# argon2 hashes whatever it is given; a bound keeps one request from costing much.
MAX_PASSWORD = 1024
MAX_EMAIL = 254
MAX_DISPLAY_NAME = 128
MAX_TOKEN = 512
MAX_LOGIN_NAME = 256
MAX_LOCK_REASON = 256
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


class Checks:
    """Collects violations; `done()` raises InvalidArgument listing all of them."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def bad(self, field: str, description: str) -> None:
        self.violations.append(FieldViolation(field, description))

    def done(self) -> None:
        if self.violations:
            raise InvalidArgument(self.violations)

    def required(self, field: str, value: str) -> bool:
        if not value:
            self.bad(field, "is required")
            return False
        return True

    def username(self, field: str, value: str) -> None:
        if self.required(field, value) and not USERNAME.fullmatch(value):
            self.bad(field, "must be 3 to 64 letters, digits, '.', '_' or '-'")

    def text(self, field: str, value: str, max_chars: int, *, required: bool = False) -> None:
        """Free text: at most `max_chars` characters, no control characters."""
        if required and not self.required(field, value):
            return
        if len(value) > max_chars:
            self.bad(field, f"must be at most {max_chars} characters")
        elif CONTROL.search(value):
            self.bad(field, "must not contain control characters")

    def email(self, field: str, value: str) -> None:
        if self.required(field, value) and (
            len(value) > MAX_EMAIL or not EMAIL.fullmatch(value) or CONTROL.search(value)
        ):
            self.bad(field, f"must be an email address of at most {MAX_EMAIL} characters")

    def new_password(self, field: str, value: str) -> None:
        if not self.required(field, value):
            return
        if len(value) < MIN_PASSWORD:
            self.bad(field, f"must be at least {MIN_PASSWORD} characters")
        elif len(value) > MAX_PASSWORD:
            self.bad(field, f"must be at most {MAX_PASSWORD} characters")
        elif not value.strip():
            self.bad(field, "must not be only spaces")

    def password(self, field: str, value: str) -> None:
        if self.required(field, value) and len(value) > MAX_PASSWORD:
            self.bad(field, f"must be at most {MAX_PASSWORD} characters")

    def display_name(self, field: str, value: str) -> None:
        self.text(field, value, MAX_DISPLAY_NAME)

    def user_id(self, field: str, value: str) -> None:
        if self.required(field, value):
            try:
                uuid.UUID(value)
            except ValueError:
                self.bad(field, "must be a user id (a UUID)")

    def token(self, field: str, value: str) -> None:
        if self.required(field, value) and len(value) > MAX_TOKEN:
            self.bad(field, f"must be at most {MAX_TOKEN} characters")

    def totp_code(self, field: str, value: str, *, required: bool = True) -> None:
        if not value and not required:
            return
        if self.required(field, value) and not TOTP_CODE.fullmatch(value):
            self.bad(field, "must be 6 digits")

    def role(self, field: str, value: str) -> None:
        if self.required(field, value) and not ROLE.fullmatch(value):
            self.bad(field, "must be 1 to 64 lower-case letters, digits, '.', '_' or '-'")

    def permission(self, field: str, value: str) -> None:
        if self.required(field, value) and (len(value) > 128 or not PERMISSION.fullmatch(value)):
            self.bad(field, "must be dotted lower-case words, such as reports.read")

    def page_size(self, field: str, value: int) -> int:
        if value < 0:
            self.bad(field, "must not be negative")
            return DEFAULT_PAGE_SIZE
        return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
