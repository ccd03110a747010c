"""How a chain's Merkle tree is stored: tiles, as Go's checksum database does
(golang.org/x/mod/sumdb/tlog, "tiles" of height 8).

Tile `(tile_level, index)` holds the hashes of tree level `8 * tile_level`, nodes
`[256 * index, 256 * index + 256)`, concatenated (32 bytes each); it grows as those
nodes are completed, and never changes once full. Level-0 tiles hold the leaf hashes;
level-1 tiles the roots of each 256 leaves; and so on: about 32.1 bytes per event in
all. Any complete node is one tile read plus at most 127 hashes; a proof at 10M
leaves reads at most ~25 tiles. The appender adds to tiles in the same transaction as
the rows (`TileAppends`), so the tiles are always the tree of the committed rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from meshkit.merkle import Node, perfect_root

HEIGHT = 8
WIDTH = 1 << HEIGHT
HASH_SIZE = 32

TileKey = tuple[int, int]  # (tile level, tile index)


def tile_span(node: Node) -> tuple[TileKey, int, int]:
    """The tile that holds the bottom of `node`, and which of its hashes (start, count)."""
    level, index = node
    tile_level, up = divmod(level, HEIGHT)
    first = index << up  # at tree level 8 * tile_level
    return (tile_level, first >> HEIGHT), first & (WIDTH - 1), 1 << up


def tiles_for(nodes: set[Node] | list[Node]) -> set[TileKey]:
    """The tiles to read to know every one of `nodes`."""
    return {tile_span(n)[0] for n in nodes}


class MissingTile(LookupError):
    """A node asked for is not in the stored tiles (the tree is behind the rows)."""


def node_hashes(nodes: set[Node] | list[Node], tiles: Mapping[TileKey, bytes]) -> dict[Node, bytes]:
    """The hash of each node from the tiles holding it; MissingTile if one is short."""
    out = {}
    for node in nodes:
        key, start, count = tile_span(node)
        data = tiles.get(key, b"")
        if len(data) < (start + count) * HASH_SIZE:
            raise MissingTile(f"node {node} is not in tile {key}")
        row = [data[i * HASH_SIZE : (i + 1) * HASH_SIZE] for i in range(start, start + count)]
        out[node] = perfect_root(row)
    return out


@dataclass(slots=True)
class TileAppends:
    """The hashes a group commit adds to tiles: give `add` to `CompactRange.append`
    as its `created` callback, then write `rows()`."""

    _adds: dict[TileKey, list[bytes]] = field(default_factory=dict)

    def add(self, level: int, index: int, digest: bytes) -> None:
        if level % HEIGHT:
            return
        key = (level // HEIGHT, index >> HEIGHT)
        hashes = self._adds.get(key)
        if hashes is None:
            self._adds[key] = [digest]
        else:
            hashes.append(digest)

    def add_row(self, level: int, first: int, hashes: list[bytes]) -> None:
        """A run of new nodes of one level from `first` on (`CompactRange.extend`'s
        `rows`): those of a tile level, split at tile boundaries."""
        if level % HEIGHT:
            return
        tile_level, i, end = level // HEIGHT, first, first + len(hashes)
        while i < end:
            stop = min(end, (i // WIDTH + 1) * WIDTH)
            self._adds.setdefault((tile_level, i >> HEIGHT), []).extend(
                hashes[i - first : stop - first]
            )
            i = stop

    def rows(self) -> tuple[list[int], list[int], list[bytes]]:
        """(tile levels, tile indexes, bytes to append), in column form for unnest."""
        keys = sorted(self._adds)
        return (
            [k[0] for k in keys],
            [k[1] for k in keys],
            [b"".join(self._adds[k]) for k in keys],
        )
