"""Checks of caller input; each returns the problems it finds, named by proto field path."""

from __future__ import annotations

import re
import uuid

from meshkit import limits
from meshkit.limits import Limit
from user_svc.errors import InvalidArgument
from user_svc.model import FieldViolation


def _pattern(limit: Limit) -> re.Pattern[str]:
    assert limit.pattern is not None
    return re.compile(limit.pattern)


def _bound(value: int | None) -> int:
    assert value is not None
    return value


# Every bound and pattern comes from meshkit.limits, which the OpenAPI documents print.
USERNAME = _pattern(limits.USERNAME)
EMAIL = _pattern(limits.EMAIL)
ROLE = _pattern(limits.ROLE)
PERMISSION = _pattern(limits.PERMISSION)
TOTP_CODE = _pattern(limits.TOTP_CODE)
# Refused in every free-text field, so none reaches SQL, logs or the audit trail.
CONTROL = re.compile(f"[{limits.CONTROLS}]")
MIN_PASSWORD = _bound(limits.NEW_PASSWORD.min_length)
MAX_PASSWORD = _bound(limits.PASSWORD.max_length)
MAX_EMAIL = _bound(limits.EMAIL.max_length)
MAX_DISPLAY_NAME = _bound(limits.DISPLAY_NAME.max_length)
MAX_TOKEN = _bound(limits.TOKEN.max_length)
MAX_LOGIN_NAME = _bound(limits.LOGIN_NAME.max_length)
MAX_LOCK_REASON = _bound(limits.LOCK_REASON.max_length)
MAX_PERMISSION = _bound(limits.PERMISSION.max_length)
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
        if self.required(field, value) and (len(value) > MAX_EMAIL or not EMAIL.fullmatch(value)):
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
        if self.required(field, value) and (
            len(value) > MAX_PERMISSION or not PERMISSION.fullmatch(value)
        ):
            self.bad(field, "must be dotted lower-case words, such as reports.read")

    def page_size(self, field: str, value: int) -> int:
        if value < 0:
            self.bad(field, "must not be negative")
            return DEFAULT_PAGE_SIZE
        return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
