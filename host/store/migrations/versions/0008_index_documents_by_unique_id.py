"""index documents by uniqueId alone (conditional PATCH by identifier without a patient)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 18:10:00

The uniqueId is unique per patient (ix_documents_unique, patient first); finding which patient
holds a uniqueId needs this secondary index (docs/wire-search.md, "Conditional PATCH").
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.create_index("ix_documents_unique_id", ["unique_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index("ix_documents_unique_id")
