"""Dataset.curated_fields: metadata a steward edited, kept by later harvests.

Revision ID: 9d0df8eccec0
Revises: 269ed3fcb669
Create Date: 2026-12-06 05:53:49.382235
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '9d0df8eccec0'
down_revision: str | None = '269ed3fcb669'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # existing datasets start with no steward-edited field
    with op.batch_alter_table('dataset', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('curated_fields', sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
    with op.batch_alter_table('dataset', schema=None) as batch_op:
        batch_op.alter_column('curated_fields', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('dataset', schema=None) as batch_op:
        batch_op.drop_column('curated_fields')
