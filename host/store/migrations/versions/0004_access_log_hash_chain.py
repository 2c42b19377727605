"""the access log's hash chain (seq, prev_hash, hash) and each patient's chain head

Rows logged before this migration are chained here, per patient in (at, id) order, so every
patient's history is verifiable from its first entry (not only from the migration on).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-13 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from host.access_chain import FIELDS, GENESIS, entry_hash
from host.store.schema import UTC

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_CHAIN_COLUMNS = ("seq", "prev_hash", "hash")


def _chain_existing_rows() -> None:
    # A lightweight table (not host.store.schema's) so later schema changes cannot break
    # this migration; ``at`` keeps the UTC type so the hashed time is the one served later.
    log = sa.table("access_log", *(sa.column(name, UTC if name == "at" else sa.String)
                                   for name in (*FIELDS, *_CHAIN_COLUMNS)))
    chain = sa.table("access_chain", *(sa.column(name) for name in ("ins", *_CHAIN_COLUMNS)))
    bind = op.get_bind()
    rows = bind.execute(sa.select(log).order_by(log.c.ins, log.c.at, log.c.id)).all()
    heads: dict[str, dict[str, object]] = {}
    for row in rows:
        head = heads.get(row.ins, {"seq": 0, "hash": GENESIS})
        new = {"ins": row.ins, "seq": int(head["seq"]) + 1,  # type: ignore[call-overload]
               "prev_hash": head["hash"], "hash": entry_hash(row._mapping, str(head["hash"]))}
        bind.execute(sa.update(log).where(log.c.ins == row.ins, log.c.id == row.id)
                     .values(seq=new["seq"], prev_hash=new["prev_hash"], hash=new["hash"]))
        heads[row.ins] = new
    if heads:
        bind.execute(sa.insert(chain), list(heads.values()))


def upgrade() -> None:
    op.create_table(
        "access_chain",
        sa.Column("ins", sa.String(length=15), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("ins", name=op.f("pk_access_chain")),
    )
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    _chain_existing_rows()
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        for name in _CHAIN_COLUMNS:
            batch_op.alter_column(name, nullable=False)
        batch_op.create_index(batch_op.f("ix_access_log_seq"), ["ins", "seq"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_log_seq"))
        for name in reversed(_CHAIN_COLUMNS):
            batch_op.drop_column(name)
    op.drop_table("access_chain")
