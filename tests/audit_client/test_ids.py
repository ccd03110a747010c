"""The ids the client stamps: UUIDv7 text, increasing within the process."""

from __future__ import annotations

import uuid

from meshkit.ids import new_id


def test_text_ids_are_standard_uuid7_text_and_keep_increasing() -> None:
    ids = [new_id.text() if i % 3 else str(new_id()) for i in range(3000)]
    parsed = [uuid.UUID(i) for i in ids]
    assert [str(u) for u in parsed] == ids
    assert {u.version for u in parsed} == {7}
    assert {u.variant for u in parsed} == {uuid.RFC_4122}
    assert all(a < b for a, b in zip(ids, ids[1:], strict=False))
