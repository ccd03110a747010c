"""The listeners config and the GATEWAY_* settings: defaults, and every problem named."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import ConfigError, Settings, SettingsError, load_config
from gateway.config import parse
from tests.testkit import tls


def test_the_shipped_config_has_the_documented_listeners() -> None:
    mesh = load_config()
    audit, user = mesh.listener("audit"), mesh.listener("user")
    assert (audit.port, audit.upstream) == (8002, "127.0.0.1:50052")
    assert audit.services == ("audit.v2.AuditService", "audit.v1.AuditLogService")
    assert (user.port, user.upstream, user.services) == (
        8001,
        "127.0.0.1:50051",
        ("user.v1.UserService",),
    )
    assert mesh.transcoding.preserve_proto_field_names is True
    assert mesh.transcoding.stream_format == "array"


def test_every_config_problem_is_listed() -> None:
    raw = {
        "transcoding": {"stream_format": "xml", "colour": "red", "max_request_body_bytes": "big"},
        "listeners": [
            {"name": "a", "port": 8000, "upstream": "nowhere", "services": ["x.v1.S"]},
            {"name": "a", "port": 8000, "upstream": "h:1", "services": []},
            {"name": "b"},
        ],
    }
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    text = str(caught.value)
    for problem in (
        "transcoding: unknown key 'colour'",
        "transcoding.max_request_body_bytes must be int",
        "transcoding.stream_format must be one of array, ndjson, sse",
        "listeners[2]: missing port, upstream, services",
        "listener name 'a' is used twice",
        "port 8000 is used twice",
        "upstream 'nowhere' must be host:port",
        "listener a: services must name at least one gRPC service",
    ):
        assert problem in text


def test_an_unreadable_config_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "listeners.toml"
    bad.write_text("[transcoding\n")
    with pytest.raises(ConfigError, match="listeners.toml"):
        load_config(bad)


def test_overrides_apply_per_listener() -> None:
    mesh = load_config().with_overrides({"audit": 9002}, {"user": "10.0.0.1:7000"})
    assert mesh.listener("audit").port == 9002
    assert mesh.listener("user").upstream == "10.0.0.1:7000"
    with pytest.raises(ConfigError, match="no listener named billing"):
        load_config().with_overrides({"billing": 1})


def test_settings_from_environment() -> None:
    settings = Settings.from_env(
        {
            "GATEWAY_PORTS": "audit=0, user=18001",
            "GATEWAY_UPSTREAMS": "audit=127.0.0.1:1",
            "GATEWAY_CHANNELS_PER_UPSTREAM": "4",
            "GATEWAY_FORWARD_HEADERS": "Authorization, X-Tenant",
            **tls.env_of("GATEWAY_", "gateway"),
        }
    )
    assert settings.port_overrides == {"audit": 0, "user": 18001}
    assert settings.upstream_overrides == {"audit": "127.0.0.1:1"}
    assert settings.channels_per_upstream == 4
    assert settings.forwarded_headers == ("authorization", "x-tenant")
    assert settings.descriptor_set_path.name == "auditmesh.binpb"


def test_every_bad_setting_is_listed() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {
                "GATEWAY_PORTS": "audit",
                "GATEWAY_UPSTREAMS": "audit=nowhere",
                "GATEWAY_CHANNELS_PER_UPSTREAM": "0",
                "GATEWAY_SHUTDOWN_GRACE_SECONDS": "soon",
                "GATEWAY_LOG_FORMAT": "xml",
            }
        )
    text = str(caught.value)
    for name in (
        "PORTS",
        "UPSTREAMS",
        "CHANNELS_PER_UPSTREAM",
        "SHUTDOWN_GRACE_SECONDS",
        "LOG_FORMAT",
    ):
        assert f"GATEWAY_{name}" in text
