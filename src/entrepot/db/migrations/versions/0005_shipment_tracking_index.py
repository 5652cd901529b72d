"""shipments are found by tracking number (carrier delivery reports, support calls)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 17:00:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_shipments_tenant_id_tracking_number", "shipments", ["tenant_id", "tracking_number"])


def downgrade() -> None:
    op.drop_index("ix_shipments_tenant_id_tracking_number", table_name="shipments")
