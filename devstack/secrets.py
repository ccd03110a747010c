"""Development passwords: random, with the `auditmesh-dev` marker the services refuse
outside dev mode (meshkit.secrets), kept in a 0600 file under the server's data folder
(.run/ for `make up`, never committed) so a restart over the same folder keeps them."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from meshkit.secrets import DEV_MARKER


def dev_password(path: Path) -> str:
    """The password kept in `path`, made (random, 0600) the first time."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = f"{DEV_MARKER}-{secrets.token_urlsafe(18)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value
