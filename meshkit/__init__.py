"""What every service of the mesh shares: JSON logging with call context, and
reading one frozen settings object from prefixed environment variables."""

from meshkit.logs import JsonFormatter, configure_logging
from meshkit.settings import SettingsError, env_values, log_problems, mask_url, read_env

__all__ = [
    "JsonFormatter",
    "SettingsError",
    "configure_logging",
    "env_values",
    "log_problems",
    "mask_url",
    "read_env",
]
