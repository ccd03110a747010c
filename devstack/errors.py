"""Errors devstack raises: each says what failed and what to do about it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class DevstackError(Exception):
    """Base class for every error devstack raises on purpose."""


class SettingsError(DevstackError):
    """The environment holds invalid MESH_* settings; lists every problem at once."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid settings:\n  " + "\n  ".join(self.problems))


class PortInUseError(DevstackError):
    """A fixed port is taken; names the port and the variable that moves it."""

    def __init__(self, label: str, port: int, host: str, env_var: str | None) -> None:
        self.label = label
        self.port = port
        self.host = host
        self.env_var = env_var
        message = f"{label} port {port} is already in use on {host}"
        if env_var:
            message += f"; set {env_var} to another port"
        super().__init__(message)


class MissingBinaryError(DevstackError):
    """A server binary is not installed; names it and where it comes from."""

    def __init__(self, binary: str, install_hint: str) -> None:
        self.binary = binary
        self.install_hint = install_hint
        super().__init__(
            f"{binary} not found; install it with `{install_hint}` (`make setup` installs it)"
        )


class ServiceStartError(DevstackError):
    """A server exited or never answered; carries the tail of its log."""

    def __init__(self, name: str, reason: str, log_path: Path, log_tail: str) -> None:
        self.name = name
        self.reason = reason
        self.log_path = log_path
        self.log_tail = log_tail
        super().__init__(
            f"{name} failed to start: {reason}\n--- last lines of {log_path} ---\n{log_tail}"
        )


class StackStartError(DevstackError):
    """One or more components of a stack failed to start; the rest were stopped."""

    def __init__(self, errors: Sequence[BaseException]) -> None:
        self.errors = tuple(errors)
        super().__init__("\n\n".join(str(error) for error in self.errors))
