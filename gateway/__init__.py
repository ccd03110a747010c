"""REST/JSON to gRPC transcoding with Envoy's rules, for local runs and tests.

`python -m gateway` serves the listeners of `gateway/listeners.toml`; envoy/envoy.yaml
is generated from the same file. Public names: `Gateway` (the running process),
`Settings` (GATEWAY_* variables), `MeshConfig` and `load_config` (the listeners).
"""

from gateway.app import Gateway
from gateway.config import ConfigError, Listener, MeshConfig, Transcoding
from gateway.config import load as load_config
from gateway.settings import Settings, SettingsError

__all__ = [
    "ConfigError",
    "Gateway",
    "Listener",
    "MeshConfig",
    "Settings",
    "SettingsError",
    "Transcoding",
    "load_config",
]
