"""The ids the client stamps events and batches with (see meshkit.ids)."""

from meshkit.ids import new_id, uuid7

__all__ = ["new_id", "uuid7"]
