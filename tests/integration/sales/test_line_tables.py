"""On SQLite the order and shipment lines and the journal lines are their keys' b-trees (WITHOUT
ROWID): a line written or updated by id touches one b-tree, not two. Order lines carry no index
by product (nothing reads them by product)."""

from __future__ import annotations

import sqlite3

LINE_TABLES = ("sales_order_lines", "shipment_lines", "ledger_journal_lines")


def test_line_tables_are_without_rowid_and_order_lines_have_no_product_index(sqlite_only):
    # given the schema the migrations create on SQLite
    with sqlite3.connect(sqlite_only.split("///", 1)[1]) as conn:
        # when its tables and indexes are read
        sql = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())
        order_line_indexes = {name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sales_order_lines'")}

    # then each of these line tables is WITHOUT ROWID, and order lines are indexed by order only
    assert {t for t in LINE_TABLES if "WITHOUT ROWID" in sql[t].upper()} == set(LINE_TABLES)
    assert order_line_indexes == {"ix_sales_order_lines_tenant_id_order_id"}
