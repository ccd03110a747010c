"""Comparing receipts across acks."""

from __future__ import annotations

from audit.v2 import event_pb2


def where(receipt: event_pb2.Receipt) -> tuple[str, int, str, str, int]:
    """A receipt's place in its chain and tree, without the tree size it was acked at
    (any size that includes the event is one to ask an inclusion proof at)."""
    return (receipt.chain_id, receipt.seq, receipt.hash, receipt.prev_hash, receipt.leaf_index)
