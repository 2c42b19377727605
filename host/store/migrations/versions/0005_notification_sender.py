"""the notification sender's state, the patient's contact and channel, first accesses

The rows already sent keep status "sent"; the others wait as "pending". The professionals who
already accessed the dossier and the authors who already deposited in it are recorded, so
that only a first access or a first document after this migration is notified as such.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from host.store.schema import UTC

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _backfill() -> None:
    bind = op.get_bind()
    notes = sa.table("notifications", sa.column("sent_at", UTC), sa.column("status"))
    bind.execute(sa.update(notes).where(notes.c.sent_at.is_not(None)).values(status="sent"))
    log = sa.table("access_log", sa.column("ins"), sa.column("actor_id"),
                   sa.column("actor_kind"), sa.column("outcome"), sa.column("at", UTC))
    docs = sa.table("documents", sa.column("ins"), sa.column("author_id"),
                    sa.column("deposited_at", UTC))
    firsts = sa.table("dossier_firsts", sa.column("ins"), sa.column("role"),
                      sa.column("id_nat_ps"), sa.column("at", UTC))
    accessed = (sa.select(log.c.ins, sa.literal("access"), log.c.actor_id, sa.func.min(log.c.at))
                .where(log.c.actor_kind == "professional", log.c.outcome == "allowed")
                .group_by(log.c.ins, log.c.actor_id))
    bind.execute(sa.insert(firsts).from_select(["ins", "role", "id_nat_ps", "at"], accessed))
    authored = (sa.select(docs.c.ins, sa.literal("author"), docs.c.author_id,
                          sa.func.min(docs.c.deposited_at))
                .group_by(docs.c.ins, docs.c.author_id))
    bind.execute(sa.insert(firsts).from_select(["ins", "role", "id_nat_ps", "at"], authored))


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=10), nullable=False,
                                      server_default="pending"))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False,
                                      server_default="0"))
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("claim_token", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_error", sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f("ix_notifications_queue"), ["status", "created_at"],
                              unique=False)
    op.create_table(
        "patient_contacts",
        sa.Column("ins", sa.String(length=15), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ins", name=op.f("pk_patient_contacts")),
    )
    op.create_table(
        "dossier_firsts",
        sa.Column("ins", sa.String(length=15), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("id_nat_ps", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ins", "role", "id_nat_ps", name=op.f("pk_dossier_firsts")),
    )
    _backfill()


def downgrade() -> None:
    op.drop_table("dossier_firsts")
    op.drop_table("patient_contacts")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifications_queue"))
        for name in ("last_error", "claimed_at", "claim_token", "next_attempt_at", "attempts",
                     "status"):
            batch_op.drop_column(name)
