"""A service that emits audit events, as a child process a test can kill -9:
`python -m tests.audit_client.emitter COUNT [settle|emit]` with AUDIT_CLIENT_*
settings. It emits COUNT guide events; with `settle` (the default) it waits until each
is acked or spooled (flush). Then it prints one line, `ready <JSON>` (the client's
stats and the event ids), and waits to be killed."""

from __future__ import annotations

import asyncio
import json
import sys

from audit_client import AuditClient, ClientSettings
from tests.audit_client.support import make_events


async def main(count: int, settle: bool) -> None:
    client = AuditClient(ClientSettings.from_env())
    await client.start()
    ids = [await client.emit(event) for event in make_events(count)]
    if settle:
        await client.flush()
    print("ready", json.dumps({**client.stats().as_dict(), "ids": ids}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2:3] != ["emit"]))
