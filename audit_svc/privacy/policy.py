"""The privacy policy: which event fields and `details` keys are personal data, how an
`audit.reader` sees each (a mask), and what each `data_classification` changes. One
TOML file (`audit_svc/privacy.toml`, or `AUDIT_PRIVACY_POLICY_FILE`), loaded and
validated at start-up with every problem listed."""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit_svc.ingest.validation import CLASSIFICATIONS

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "privacy.toml"


class PrivacyPolicyError(ValueError):
    """The privacy policy is missing or invalid; the message lists every problem."""


class Mask(enum.Enum):
    """How an `audit.reader` sees a personal value."""

    NAME = "name"  # j***e
    EMAIL = "email"  # j***e@example.com
    NETWORK = "network"  # 192.168.1.0/24
    REDACT = "redact"  # [redacted]


# The event fields that may be personal, and the masks each may take.
FIELD_MASKS: Mapping[str, frozenset[Mask]] = {
    "username": frozenset({Mask.NAME, Mask.EMAIL, Mask.REDACT}),
    "ip_address": frozenset({Mask.NETWORK, Mask.REDACT}),
    "user_agent": frozenset({Mask.NAME, Mask.REDACT}),
}
PSEUDONYM = "pseudonym"


@dataclass(frozen=True, slots=True)
class Treatment:
    """What one data_classification changes: whether readers see masks or only
    [redacted], and whether every details value is personal or only the listed keys."""

    masked: bool = True
    all_details: bool = False


@dataclass(frozen=True, slots=True)
class PrivacyPolicy:
    """The loaded policy. `fields`: personal event fields (other than user_id, always
    a pseudonym) and their masks; `details`: personal details keys and their masks."""

    fields: Mapping[str, Mask]
    details: Mapping[str, Mask]
    classifications: Mapping[str, Treatment]

    def treatment(self, classification: str) -> Treatment:
        return self.classifications.get(classification, _STRICT)

    def personal_details(self, details: Mapping[str, Any], classification: str) -> list[str]:
        """The keys of `details` that are personal for an event of `classification`."""
        if self.treatment(classification).all_details:
            return list(details)
        return [k for k in details if k in self.details]

    def detail_mask(self, key: str) -> Mask:
        return self.details.get(key, Mask.REDACT)


_STRICT = Treatment(masked=False, all_details=True)


def load_privacy_policy(path: Path | str = DEFAULT_PATH) -> PrivacyPolicy:
    """The policy in `path`; PrivacyPolicyError listing every problem."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PrivacyPolicyError(f"cannot read the privacy policy {path}: {exc}") from None
    problems: list[str] = []
    problems += [f"unknown key {k!r}" for k in sorted(set(data) - _TOP_KEYS)]

    fields: dict[str, Mask] = {}
    raw_fields = _table(data, "fields", problems)
    if raw_fields.get("user_id") != PSEUDONYM:
        problems.append('fields.user_id must be "pseudonym" (the subject of every data key)')
    for name, value in raw_fields.items():
        if name == "user_id":
            continue
        allowed = FIELD_MASKS.get(name)
        if allowed is None:
            problems.append(f"fields.{name}: not a field that can be personal")
            continue
        mask = _mask(value, f"fields.{name}", problems)
        if mask is not None and mask not in allowed:
            choices = ", ".join(sorted(m.value for m in allowed))
            problems.append(f"fields.{name}: mask {mask.value!r} does not fit; one of {choices}")
        elif mask is not None:
            fields[name] = mask

    details: dict[str, Mask] = {}
    for key, value in _table(data, "details", problems).items():
        mask = _mask(value, f"details.{key}", problems)
        if mask is not None:
            details[key] = mask

    classifications: dict[str, Treatment] = {}
    raw_classes = _table(data, "classifications", problems)
    for name in sorted(CLASSIFICATIONS - set(raw_classes)):
        problems.append(f"classifications.{name} is missing")
    for name, entry in raw_classes.items():
        where = f"classifications.{name}"
        if name not in CLASSIFICATIONS:
            problems.append(f"{where}: not a data_classification")
            continue
        if not isinstance(entry, dict):
            problems.append(f"{where} must be a table")
            continue
        problems += [f"{where}: unknown key {k!r}" for k in sorted(set(entry) - _CLASS_KEYS)]
        reader, scope = entry.get("reader"), entry.get("details")
        if reader not in ("mask", "redact"):
            problems.append(f'{where}.reader must be "mask" or "redact"')
        if scope not in ("listed", "all"):
            problems.append(f'{where}.details must be "listed" or "all"')
        classifications[name] = Treatment(masked=reader == "mask", all_details=scope == "all")
    if problems:
        raise PrivacyPolicyError(f"invalid privacy policy {path}:\n  " + "\n  ".join(problems))
    return PrivacyPolicy(fields, details, classifications)


_TOP_KEYS = frozenset({"fields", "details", "classifications"})
_CLASS_KEYS = frozenset({"reader", "details"})


def _table(data: dict[str, Any], key: str, problems: list[str]) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        problems.append(f"{key} must be a table ([{key}])")
        return {}
    return value


def _mask(value: Any, where: str, problems: list[str]) -> Mask | None:
    try:
        return Mask(value)
    except ValueError:
        choices = ", ".join(m.value for m in Mask)
        problems.append(f"{where}: unknown mask {value!r}; one of {choices}")
        return None
