"""Production secrets left at a development value: found per setting, refused at a
service's start-up outside dev mode (each offending variable named), a warning in it.

A development value is an empty secret, a URL without a password, or a value with
the `auditmesh-dev` marker: every dev secret devstack generates (`make up`, .run/) and
every file of compose/dev-secrets/ carries it, so none of them passes for production.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from meshkit.settings import SettingsError

DEV_MARKER = "auditmesh-dev"


def dev_value(secret: str) -> bool:
    """True for an empty secret or one carrying the development marker."""
    return not secret or DEV_MARKER in secret


def secret_problem(variable: str, secret: str) -> list[str]:
    """`variable` named when `secret` is empty or a development value."""
    if not secret:
        return [f"{variable} is empty"]
    if DEV_MARKER in secret:
        return [f"{variable} is a development value ({DEV_MARKER}...)"]
    return []


def url_password_problem(variable: str, url: str) -> list[str]:
    """`variable` named when the URL `url` carries no password or a development one."""
    if urlsplit(url).scheme == "unix":
        return []  # a local socket: its file permissions are the credential
    password = urlsplit(url).password or ""
    if not password:
        return [f"{variable} has no password"]
    if DEV_MARKER in password:
        return [f"{variable} has a development password ({DEV_MARKER}...)"]
    return []


def master_key_problem(variable: str, path: str) -> list[str]:
    """`variable` named when the key file `path` is missing or a development value."""
    try:
        text = Path(path).read_text()
    except OSError:
        return [f"{variable} ({path}) does not exist or cannot be read"]
    if DEV_MARKER in text:
        return [f"{variable} ({path}) is a development key ({DEV_MARKER}...)"]
    return []


def refuse_dev_secrets(
    what: str, problems: Iterable[str], *, dev_mode: bool, dev_flag: str, log: logging.Logger
) -> None:
    """Raise SettingsError listing `problems` unless `dev_mode`; then warn once instead."""
    found = list(problems)
    if not found:
        return
    if not dev_mode:
        raise SettingsError(
            f"{what} refuses to start with development secrets ({dev_flag} is off):\n  "
            + "\n  ".join(found)
        )
    log.warning("%s runs with development secrets (%s): %s", what, dev_flag, "; ".join(found))
