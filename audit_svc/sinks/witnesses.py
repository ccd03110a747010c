"""Sends each new checkpoint, with a consistency proof from the last size the witness
cosigned, to the configured tlog-witnesses (AUDIT_WITNESS_URLS), and keeps the
cosignatures they return: in PostgreSQL next to the checkpoint, and as the object
`checkpoints/<chain>/<seq>.cosigned` (the note with every cosignature) in the bucket.

A witness that refuses (a fork, a bad proof) or cannot be reached is logged and
retried with the next checkpoint; ingest never waits for witnesses.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.error
import urllib.request

from audit_svc.integrity.witness import request_body
from audit_svc.sinks.objects import ObjectStore
from audit_svc.storage.protocols import CheckpointRow, TreeStore
from meshkit import merkle

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 10.0


def cosigned_key(object_key: str) -> str:
    return object_key.rsplit(".", 1)[0] + ".cosigned"


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


class Witnesses:
    """The witnesses of one chain; `send` is a Checkpointer's after-checkpoint hook."""

    def __init__(
        self, urls: tuple[str, ...], tree: TreeStore, chain_id: str, store: ObjectStore
    ) -> None:
        self.urls = urls
        self._tree = tree
        self.chain_id = chain_id
        self._store = store
        self._sizes: dict[str, int] = {}  # what each witness last cosigned, as far as known

    async def send(self, row: CheckpointRow) -> None:
        if not row.note:
            return
        lines = [line for url in self.urls if (line := await self._send(url, row))]
        if not lines:
            return
        text = "".join(lines)
        await self._tree.add_cosignatures(self.chain_id, row.seq, text)
        await self._store.put(
            cosigned_key(row.object_key), (row.note + text).encode(), "text/plain; charset=utf-8"
        )

    async def _send(self, url: str, row: CheckpointRow) -> str:
        old = self._sizes.get(url, 0)
        for _ in range(2):
            if old > row.seq:
                log.error("witness %s has size %d, beyond our %d: a fork?", url, old, row.seq)
                return ""
            plan = merkle.consistency_plan(old, row.seq)
            nodes = await self._tree.node_hashes(self.chain_id, merkle.plan_nodes(plan))
            body = request_body(old, merkle.assemble(plan, nodes), row.note.encode())
            try:
                status, answer = await asyncio.to_thread(_post, f"{url}/add-checkpoint", body)
            except OSError as exc:
                log.warning("witness %s unreachable: %s", url, exc)
                return ""
            if status == 200:
                self._sizes[url] = row.seq
                return answer.decode()
            if status == 409 and answer.strip().isdigit() and int(answer) != old:
                old = int(answer)  # the witness knows a different size: prove from there
                continue
            log.error("witness %s refused checkpoint %d (%d): %s", url, row.seq, status,
                      answer[:200].decode(errors="replace"))  # fmt: skip
            return ""
        return ""
