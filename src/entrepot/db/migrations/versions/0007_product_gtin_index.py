"""products are found by the barcode scanned (GET /products?gtin=, the one-product-per-barcode check)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 19:20:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_catalog_products_tenant_id_gtin", "catalog_products", ["tenant_id", "gtin"])


def downgrade() -> None:
    op.drop_index("ix_catalog_products_tenant_id_gtin", table_name="catalog_products")
