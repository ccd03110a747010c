"""Accounts, roles, permissions, sessions, refresh and reset tokens, known addresses.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE users (
            user_id            uuid PRIMARY KEY,
            username           text NOT NULL,
            email              text NOT NULL,
            display_name       text NOT NULL DEFAULT '',
            password_hash      text NOT NULL,
            -- TOTP secrets sealed with AES-256-GCM (nonce || ciphertext), never plain
            mfa_secret         bytea,
            mfa_pending_secret bytea,
            mfa_last_step      bigint NOT NULL DEFAULT 0,
            locked             boolean NOT NULL DEFAULT false,
            -- NULL while locked: until an admin unlocks
            locked_until       timestamptz,
            failed_logins      integer NOT NULL DEFAULT 0,
            last_failure_time  timestamptz,
            create_time        timestamptz NOT NULL DEFAULT now(),
            update_time        timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE UNIQUE INDEX users_username_key ON users (lower(username))")
    op.execute("CREATE UNIQUE INDEX users_email_key ON users (lower(email))")
    # ListUsers walks this index: oldest first, keyset pages.
    op.execute("CREATE INDEX users_page_idx ON users (create_time, user_id)")
    op.execute(
        """
        CREATE TABLE user_roles (
            user_id    uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
            role       text NOT NULL,
            grant_time timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, role)
        )
        """
    )
    op.execute("CREATE INDEX user_roles_role_idx ON user_roles (role)")
    op.execute(
        """
        CREATE TABLE user_permissions (
            user_id    uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
            permission text NOT NULL,
            grant_time timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, permission)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE sessions (
            session_id  text PRIMARY KEY,
            user_id     uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
            ip_address  inet,
            user_agent  text NOT NULL DEFAULT '',
            mfa_used    boolean NOT NULL,
            create_time timestamptz NOT NULL DEFAULT now(),
            end_time    timestamptz,
            end_reason  text NOT NULL DEFAULT ''
        )
        """
    )
    op.execute("CREATE INDEX sessions_user_idx ON sessions (user_id)")
    op.execute(
        """
        CREATE TABLE refresh_tokens (
            token_hash  bytea PRIMARY KEY,
            session_id  text NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
            create_time timestamptz NOT NULL DEFAULT now(),
            expire_time timestamptz NOT NULL,
            -- set when the token is traded in; a second use is a reuse
            use_time    timestamptz
        )
        """
    )
    op.execute("CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id)")
    op.execute("CREATE INDEX refresh_tokens_expire_idx ON refresh_tokens (expire_time)")
    op.execute(
        """
        CREATE TABLE password_resets (
            token_hash  bytea PRIMARY KEY,
            user_id     uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
            create_time timestamptz NOT NULL DEFAULT now(),
            expire_time timestamptz NOT NULL,
            use_time    timestamptz
        )
        """
    )
    op.execute("CREATE INDEX password_resets_user_idx ON password_resets (user_id)")
    op.execute("CREATE INDEX password_resets_expire_idx ON password_resets (expire_time)")
    op.execute(
        """
        CREATE TABLE login_addresses (
            user_id    uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
            ip_address inet NOT NULL,
            first_seen timestamptz NOT NULL DEFAULT now(),
            last_seen  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, ip_address)
        )
        """
    )
    # Development keys, generated on first start when none are configured.
    op.execute(
        """
        CREATE TABLE dev_keys (
            name        text PRIMARY KEY,
            key         bytea NOT NULL,
            create_time timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    for table in (
        "dev_keys",
        "login_addresses",
        "password_resets",
        "refresh_tokens",
        "sessions",
        "user_permissions",
        "user_roles",
        "users",
    ):
        op.execute(f"DROP TABLE {table}")
