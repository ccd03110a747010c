"""The Merkle tree of each chain as tiles (audit_svc.integrity.tiles), and the C2SP
form of checkpoints: the tree size and root they sign, the signed note, and the
witnesses' cosignatures.

The tiles of rows stored before this revision are built at start-up by the
audit-service (`storage.merkle_tiles.catch_up`), which has the canonical-bytes code.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE merkle_tiles (
            chain_id text NOT NULL,
            level    smallint NOT NULL,
            idx      bigint NOT NULL,
            hashes   bytea NOT NULL,
            PRIMARY KEY (chain_id, level, idx)
        )
        """
    )
    # Hashes do not compress: keep them out of pglz's way.
    op.execute("ALTER TABLE merkle_tiles ALTER COLUMN hashes SET STORAGE EXTERNAL")
    op.execute(
        "ALTER TABLE checkpoints ADD COLUMN root_hash bytea, ADD COLUMN note text, "
        "ADD COLUMN cosignatures text NOT NULL DEFAULT ''"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE checkpoints DROP COLUMN root_hash, DROP COLUMN note, DROP COLUMN cosignatures"
    )
    op.execute("DROP TABLE merkle_tiles")
