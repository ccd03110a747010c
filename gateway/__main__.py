"""`python -m gateway`: serve every listener of the config until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from gateway import logs
from gateway.app import Gateway
from gateway.config import ConfigError
from gateway.descriptors import DescriptorError
from gateway.routes import RouteError
from gateway.settings import Settings, SettingsError

log = logging.getLogger("gateway")


async def serve(settings: Settings) -> None:
    """Serve until a signal, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Gateway(settings) as gateway:
        ports = ", ".join(f"{name} {port}" for name, port in gateway.ports.items())
        log.info("gateway ready: %s", ports)
        await stop.wait()
        log.info("signal received; shutting down")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(settings))
    except (ConfigError, DescriptorError, RouteError) as exc:
        log.error("gateway cannot start: %s", exc)
        return 2
    except OSError as exc:
        log.error("gateway cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
