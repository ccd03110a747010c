"""PostgreSQL driver failures that mean "not reachable now", for the storage
boundary of every service (encode/httpx's map_httpcore_exceptions pattern)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import asyncpg


@contextlib.contextmanager
def map_db_errors(unavailable: Callable[[str], Exception]) -> Iterator[None]:
    """Re-raise connection-level driver errors as `unavailable(reason)`, the calling
    service's own domain error; every other error passes through unchanged."""
    try:
        yield
    except (OSError, asyncpg.exceptions.ConnectionDoesNotExistError) as exc:
        raise unavailable(f"database unreachable: {exc.__class__.__name__}") from exc
    except asyncpg.exceptions.CannotConnectNowError as exc:
        raise unavailable("database is starting up or shutting down") from exc
    except (
        asyncpg.exceptions.InvalidCatalogNameError,
        asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    ) as exc:
        raise unavailable(f"database refused the connection: {exc.__class__.__name__}") from exc
    except asyncpg.exceptions.TooManyConnectionsError as exc:
        raise unavailable("database has no free connections") from exc
    except asyncpg.exceptions.InterfaceError as exc:
        if "closed" in str(exc) or "connection" in str(exc):
            raise unavailable("database connection lost") from exc
        raise
