"""Outside AUDIT_DEV_MODE the audit-service refuses to start with a development
secret, naming each variable; in dev mode the same settings start with a warning."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from audit_svc.settings import Settings, SettingsError
from devstack.settings import DEFAULT_S3_SECRET_KEY
from tests.testkit.tls import privacy_key_file

DEV_DEFAULTS = {
    # The default database URL has no password; S3's is devstack's dev key.
    "AUDIT_TLS": "plaintext",
    "AUDIT_S3_ENDPOINT": "127.0.0.1:9000",
    "AUDIT_S3_ACCESS_KEY": "auditmesh",
    "AUDIT_S3_SECRET_KEY": DEFAULT_S3_SECRET_KEY,
    "AUDIT_INFLUX_URL": "http://127.0.0.1:8086",
    "AUDIT_SIGNING_KEY": "auditmesh-dev-seed",
    "AUDIT_AMQP_URL": "amqp://audit-service@127.0.0.1:5672/",  # no password
}
OFFENDING = (
    "AUDIT_DATABASE_URL",
    "AUDIT_PAGE_TOKEN_KEY",
    "AUDIT_S3_SECRET_KEY",
    "AUDIT_INFLUX_TOKEN",
    "AUDIT_SIGNING_KEY",
    "AUDIT_AMQP_URL",
    "AUDIT_PRIVACY_KEY_FILE",  # the default file is missing (or a dev key of `make up`)
)
log = logging.getLogger("test")


def test_dev_defaults_refused_outside_dev_mode_naming_each_variable() -> None:
    settings = Settings.from_env(DEV_DEFAULTS)
    with pytest.raises(SettingsError) as caught:
        settings.check_secrets(log)
    for variable in OFFENDING:
        assert variable in str(caught.value)


def test_dev_defaults_accepted_in_dev_mode_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings.from_env({**DEV_DEFAULTS, "AUDIT_DEV_MODE": "true"})
    with caplog.at_level(logging.WARNING):
        settings.check_secrets(log)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1
    for variable in OFFENDING:
        assert variable in warned[0].getMessage()


def test_dev_secrets_flag_accepts_them_on_any_listener() -> None:
    """compose.override.yml: dev secrets on 0.0.0.0, where AUDIT_DEV_MODE is refused."""
    settings = Settings.from_env(
        {**DEV_DEFAULTS, "AUDIT_DEV_SECRETS": "true", "AUDIT_GRPC_LISTEN": "0.0.0.0:50052"}
    )
    settings.check_secrets(log)


def test_production_secrets_accepted_without_dev_mode() -> None:
    settings = Settings.from_env(
        {
            "AUDIT_PRIVACY_KEY_FILE": privacy_key_file(),
            **DEV_DEFAULTS,
            "AUDIT_DATABASE_URL": "postgresql://audit_svc:k9Qm2x@db:5432/audit",
            "AUDIT_PAGE_TOKEN_KEY": "p" * 32,
            "AUDIT_S3_SECRET_KEY": "s3-production-secret",
            "AUDIT_INFLUX_TOKEN": "influx-production-token",
            "AUDIT_SIGNING_KEY": "production-seed",
            "AUDIT_AMQP_URL": "amqps://audit-service:r4bb1t-Pr0d@mq:5671/",
        }
    )
    assert settings.dev_secret_problems() == []
    settings.check_secrets(log)


def test_start_up_refuses_before_serving() -> None:
    """`python -m audit_svc` exits 2 with every offending variable, binding nothing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_")}
    done = subprocess.run(
        [sys.executable, "-m", "audit_svc"],
        env=env | DEV_DEFAULTS | {"AUDIT_GRPC_LISTEN": "127.0.0.1:0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    for variable in OFFENDING:
        assert variable in done.stderr
