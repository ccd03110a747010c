"""Outside USER_DEV_MODE the user-service refuses to start with a development secret
(no database or Redis password, the database's dev keys), naming each variable; in
dev mode (what `make up` sets) the same settings start with a warning."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from user_svc.settings import Settings, SettingsError

# Every default: the database and Redis URLs have no password, the keys are empty
# (the development keys kept in the database).
DEV_DEFAULTS = {"USER_TLS": "plaintext", "USER_AUDIT_TLS": "plaintext"}
OFFENDING = (
    "USER_DATABASE_URL",
    "USER_REDIS_URL",
    "USER_JWT_SIGNING_KEY",
    "USER_MFA_ENCRYPTION_KEY",
    "USER_MAIL_ENCRYPTION_KEY",
)
log = logging.getLogger("test")


def test_dev_defaults_refused_outside_dev_mode_naming_each_variable() -> None:
    settings = Settings.from_env(DEV_DEFAULTS)
    with pytest.raises(SettingsError) as caught:
        settings.check_secrets(log)
    for variable in OFFENDING:
        assert variable in str(caught.value)


def test_dev_password_in_a_redis_url_is_refused() -> None:
    settings = Settings.from_env(
        {**DEV_DEFAULTS, "USER_AUDIT_REDIS_URL": "redis://:auditmesh-dev-redis@redis:6379/0"}
    )
    assert any("USER_AUDIT_REDIS_URL" in p for p in settings.dev_secret_problems())


def test_dev_defaults_accepted_in_dev_mode_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings.from_env({**DEV_DEFAULTS, "USER_DEV_MODE": "true"})
    with caplog.at_level(logging.WARNING):
        settings.check_secrets(log)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1
    for variable in OFFENDING:
        assert variable in warned[0].getMessage()


def test_production_secrets_accepted_without_dev_mode() -> None:
    settings = Settings.from_env(
        {
            **DEV_DEFAULTS,
            "USER_DATABASE_URL": "postgresql://user_svc:Zr81qp@db:5432/users",
            "USER_REDIS_URL": "redis://:Hq7e2k@redis:6379/0",
            "USER_JWT_SIGNING_KEY": "j" * 32,
            "USER_MFA_ENCRYPTION_KEY": "m" * 32,
            "USER_MAIL_ENCRYPTION_KEY": "e" * 32,
        }
    )
    assert settings.dev_secret_problems() == []
    settings.check_secrets(log)


def test_start_up_refuses_before_serving() -> None:
    """`python -m user_svc` exits 2 with every offending variable, binding nothing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("USER_", "AUDIT_CLIENT_"))}
    done = subprocess.run(
        [sys.executable, "-m", "user_svc"],
        env=env | DEV_DEFAULTS | {"USER_GRPC_LISTEN": "127.0.0.1:0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    for variable in OFFENDING:
        assert variable in done.stderr
