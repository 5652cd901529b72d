"""docs/master-data.md lists each import's columns as the importers read them (and export writes them)."""

from __future__ import annotations

import re
from pathlib import Path

from entrepot.catalog.imports import PRODUCT_COLUMNS
from entrepot.inventory.imports import STOCK_COLUMNS
from entrepot.parties.imports import CUSTOMER_COLUMNS, SUPPLIER_COLUMNS, SUPPLIER_ITEM_COLUMNS
from entrepot.pricing.imports import PRICE_LIST_COLUMNS

DOC = Path(__file__).resolve().parents[3] / "docs" / "master-data.md"
KINDS = {"products": PRODUCT_COLUMNS, "customers": CUSTOMER_COLUMNS, "suppliers": SUPPLIER_COLUMNS,
         "supplier-items": SUPPLIER_ITEM_COLUMNS, "price-lists": PRICE_LIST_COLUMNS, "stock": STOCK_COLUMNS}


def test_the_documented_columns_are_the_columns_read():
    # given the table of columns in the bulk import section
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| (`.*`) \|$", DOC.read_text(), re.M))
    # then each kind's row names its columns, in the export's order
    for kind, columns in KINDS.items():
        assert kind in rows, f"docs/master-data.md lists no columns for {kind}"
        assert re.findall(r"`(\w+)`", rows[kind]) == list(columns), kind
