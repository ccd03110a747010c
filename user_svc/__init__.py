"""The user-service: accounts, sign-in, MFA, roles; every action audited.

from user_svc import Settings, UserApp

async with UserApp(Settings.from_env()) as app:
    ...  # serving gRPC on app.port
"""

__version__ = "0.1.0"

from user_svc.app import UserApp  # noqa: E402
from user_svc.settings import Settings, SettingsError  # noqa: E402

__all__ = ["Settings", "SettingsError", "UserApp", "__version__"]
