"""Reading a frozen settings dataclass from PREFIX_* environment variables.

Each field is one variable (PREFIX + the field name in upper case), parsed by the
type of its default; every problem is collected and reported at once.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("json", "text")


class SettingsError(ValueError):
    """Raised with every problem found, one per line, naming each variable."""


def read_env(
    cls: type[T],
    prefix: str,
    what: str,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    validate: Callable[[T], list[str]] | None = None,
    retired: Mapping[str, str] | None = None,
) -> T:
    """An instance of the dataclass `cls` from `environ` (os.environ by default).

    `overrides` win over the environment (tests, embedding); `validate` returns the
    problems of the built object; `retired` maps variables that no longer exist to
    what replaced them, so an old deployment is told instead of silently ignored.
    Raises `SettingsError` listing every problem, with `what` (e.g. "audit-service")
    in its first line.
    """
    values, problems = env_values(cls, prefix, environ, overrides)
    env = os.environ if environ is None else environ
    problems += [
        f"{name} is no longer read: {instead}"
        for name, instead in (retired or {}).items()
        if name in env
    ]
    settings = cls(**values)
    if validate is not None:
        problems += validate(settings)
    if problems:
        raise SettingsError(f"invalid {what} settings:\n  " + "\n  ".join(problems))
    return settings


def env_values(
    cls: type[Any],
    prefix: str,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The constructor arguments of the dataclass `cls` that `environ` (os.environ by
    default) or `overrides` set, each variable parsed by the type of its field's
    default, and the problems found (unparsable values, unknown overrides)."""
    env = os.environ if environ is None else environ
    given = dict(overrides or {})
    values: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    problems = [f"unknown setting {name!r}" for name in given if name not in names]
    for f in dataclasses.fields(cls):
        name = prefix + f.name.upper()
        if f.name in given:
            values[f.name] = given[f.name]
        elif name in env:
            kind = type(f.default) if f.default is not dataclasses.MISSING else str
            try:
                values[f.name] = _PARSERS.get(kind, kind)(env[name])
            except ValueError:
                problems.append(f"{name}={env[name]!r} is not a valid {kind.__name__}")
    return values, problems


def log_problems(prefix: str, level: str, fmt: str) -> list[str]:
    """Problems of the LOG_LEVEL and LOG_FORMAT settings every service has."""
    out = []
    if fmt not in LOG_FORMATS:
        out.append(f"{prefix}LOG_FORMAT must be json or text")
    if level.upper() not in LOG_LEVELS:
        out.append(f"{prefix}LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
    return out


def mask_url(value: str) -> str:
    """A URL without its password, for reprs and logs: '' stays '', other text '***'."""
    if not value:
        return ""
    parts = urlsplit(value)
    if not parts.scheme:
        return "***"
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return value


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


_PARSERS: dict[type, Callable[[str], Any]] = {bool: _bool}
