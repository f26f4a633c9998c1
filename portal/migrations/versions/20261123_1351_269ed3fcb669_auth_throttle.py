"""auth throttle

Short-lived authentication marks shared by every worker: per-address throttle hits (failed
logins, reset e-mails, registrations), second-factor failures per account and used TOTP steps.
Keys are stored only as an HMAC (see ``portal/services/throttle.py``).

Revision ID: 269ed3fcb669
Revises: 5d2e8c41a7f3
Create Date: 2026-11-23 13:51:05.976775
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '269ed3fcb669'
down_revision: str | None = '5d2e8c41a7f3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'throttle_hit',
        sa.Column(
            'id',
            sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column('scope', sa.String(length=32), nullable=False),
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_throttle_hit')),
    )
    with op.batch_alter_table('throttle_hit', schema=None) as batch_op:
        batch_op.create_index(
            'ix_throttle_hit_bucket', ['scope', 'key_hash', 'created_at'], unique=False
        )
        batch_op.create_index(
            batch_op.f('ix_throttle_hit_expires_at'), ['expires_at'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('throttle_hit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_throttle_hit_expires_at'))
        batch_op.drop_index('ix_throttle_hit_bucket')
    op.drop_table('throttle_hit')
