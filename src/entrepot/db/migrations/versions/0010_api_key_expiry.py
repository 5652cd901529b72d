"""an API key may expire (a contractor's, an integration's trial): refused once past its time

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 23:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import entrepot.db.types

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", entrepot.db.types.UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("expires_at")
