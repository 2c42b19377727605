"""index the reference identities by birth date and sex (the INS search from typed traits)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 20:50:00

The INS service's search from typed traits names a birth date and a sex: at a national
volume this index keeps it to the few dozen people born that day (docs/ins.md).
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.create_index("ix_patients_birth", ["birth_date", "sex"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_index("ix_patients_birth")
