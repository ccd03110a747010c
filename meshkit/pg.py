"""What the storage boundary of every service shares: driver failures that mean "not
reachable now" (encode/httpx's map_httpcore_exceptions pattern), and the pool."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg

Unavailable = Callable[[str], Exception]


@contextlib.contextmanager
def map_db_errors(unavailable: Unavailable) -> Iterator[None]:
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


async def create_pool(
    dsn: str, unavailable: Unavailable, *, min_size: int = 2, max_size: int = 10, **options: Any
) -> asyncpg.Pool:
    """A connection pool (asyncpg's `options` as given); an unreachable database is
    `unavailable(reason)`, the calling service's own domain error."""
    with map_db_errors(unavailable):
        pool: asyncpg.Pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, **options
        )
    return pool


@contextlib.asynccontextmanager
async def connection(
    pool: asyncpg.Pool, map_errors: Callable[[], contextlib.AbstractContextManager[None]]
) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection; errors of the block and of acquiring mapped by `map_errors`."""
    with map_errors():
        async with pool.acquire() as conn:
            yield conn
