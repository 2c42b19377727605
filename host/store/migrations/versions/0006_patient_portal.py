"""the patient portal: accounts (password, lockout) and browser sessions

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portal_accounts",
        sa.Column("ins", sa.String(length=15), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ins"], ["dossiers.ins"],
                                name=op.f("fk_portal_accounts_ins_dossiers")),
        sa.PrimaryKeyConstraint("ins", name=op.f("pk_portal_accounts")),
    )
    op.create_table(
        "portal_sessions",
        sa.Column("id_sha256", sa.String(length=64), nullable=False),
        sa.Column("ins", sa.String(length=15), nullable=False),
        sa.Column("stage", sa.String(length=10), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("otp_sha256", sa.String(length=64), nullable=True),
        sa.Column("otp_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("otp_attempts", sa.Integer(), nullable=False),
        sa.Column("otp_sent", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id_sha256", name=op.f("pk_portal_sessions")),
    )
    op.create_index("ix_portal_sessions_ins", "portal_sessions", ["ins", "created_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_portal_sessions_ins", table_name="portal_sessions")
    op.drop_table("portal_sessions")
    op.drop_table("portal_accounts")
