"""how each session was opened (CPS card or e-CPS), and in each access-log line

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 21:00:00

The professional authenticates with the CPS card or the e-CPS app through Pro Santé Connect
(docs/psc.md); the patient reads which one in their access history. Old rows keep NULL
("card": the only means before this revision), so their hash chain is unchanged.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("auth_means", sa.String(length=8), nullable=True))
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("auth_means", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.drop_column("auth_means")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("auth_means")
