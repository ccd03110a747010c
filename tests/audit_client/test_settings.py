"""ClientSettings: one frozen object from AUDIT_CLIENT_* variables, every problem listed,
secrets masked."""

from __future__ import annotations

import dataclasses

import pytest

from audit_client import FAIL_CLOSED, ClientSettings, SettingsError
from tests.testkit import tls


def test_reads_prefixed_variables_and_keeps_defaults_for_the_rest() -> None:
    settings = ClientSettings.from_env(
        {
            "AUDIT_CLIENT_TARGET": "audit:50052",
            "AUDIT_CLIENT_FAILURE_POLICY": "fail_closed",
            "AUDIT_CLIENT_MAX_BATCH_EVENTS": "200",
            "AUDIT_CLIENT_ACK_TIMEOUT_SECONDS": "2.5",
            "OTHER_TARGET": "ignored:1",
            **tls.env_of("AUDIT_CLIENT_", "user-service"),
        }
    )

    assert settings.target == "audit:50052"
    assert settings.failure_policy == FAIL_CLOSED and settings.fail_closed
    assert (settings.max_batch_events, settings.ack_timeout_seconds) == (200, 2.5)
    assert settings.spool_key == "user-service:audit:retry_queue"
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.target = "elsewhere:1"  # type: ignore[misc]


def test_every_problem_is_listed_with_its_variable() -> None:
    with pytest.raises(SettingsError) as caught:
        ClientSettings.from_env(
            {
                "AUDIT_CLIENT_TARGET": "no-port",
                "AUDIT_CLIENT_MAX_BATCH_EVENTS": "5000",
                "AUDIT_CLIENT_FAILURE_POLICY": "maybe",
                "AUDIT_CLIENT_ACK_TIMEOUT_SECONDS": "soon",
                "AUDIT_CLIENT_REDIS_URL": "http://redis",
                **tls.env_of("AUDIT_CLIENT_", "user-service"),
            }
        )

    named = {p.split()[0].split("=")[0] for p in caught.value.problems}
    assert named == {
        "AUDIT_CLIENT_TARGET",
        "AUDIT_CLIENT_MAX_BATCH_EVENTS",
        "AUDIT_CLIENT_FAILURE_POLICY",
        "AUDIT_CLIENT_ACK_TIMEOUT_SECONDS",
        "AUDIT_CLIENT_REDIS_URL",
    }
    assert caught.value.reason == "INVALID_SETTINGS"


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(SettingsError):
        ClientSettings(max_in_flight_batches=0)


def test_redis_password_is_masked() -> None:
    settings = ClientSettings(
        redis_url="redis://:s3cret@redis:6379/0", **tls.settings_of("user-service")
    )

    assert "s3cret" not in repr(settings)
    assert "redis://:***@redis:6379/0" in repr(settings)


def test_tls_is_required_by_default_and_plaintext_only_when_asked() -> None:
    with pytest.raises(SettingsError) as caught:
        ClientSettings.from_env({})
    named = {p.split()[0] for p in caught.value.problems}
    assert named == {
        "AUDIT_CLIENT_TLS_CA_FILE",
        "AUDIT_CLIENT_TLS_CERT_FILE",
        "AUDIT_CLIENT_TLS_KEY_FILE",
    }
    assert ClientSettings.from_env({"AUDIT_CLIENT_TLS": "plaintext"}).tls_files is None
