"""Amounts stay exact in SQL on both backends (SQLite would otherwise use floats)."""

from decimal import Decimal

from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select

from entrepot.db.engine import get_engine
from entrepot.db.types import Exact


def test_100000_cents_sum_to_exactly_1000_in_sql(db_url):
    # given a table of 100,000 amounts of 0.01
    table = Table("exact_probe", MetaData(), Column("id", Integer, primary_key=True),
                  Column("amount", Exact()))
    engine = get_engine(db_url)
    with engine.begin() as conn:
        table.drop(conn, checkfirst=True)
        table.create(conn)
    try:
        with engine.begin() as conn:
            conn.execute(insert(table), [{"amount": Decimal("0.01")}] * 100_000)
        # when they are summed and compared in SQL
        with engine.begin() as conn:
            total = conn.scalar(select(func.sum(table.c.amount)))
            above = conn.scalar(select(func.count()).where(table.c.amount > Decimal("0.0099")))
        # then the sum is exact and the comparison is too
        assert total == Decimal("1000.00")
        assert isinstance(total, Decimal)
        assert above == 100_000
    finally:
        with engine.begin() as conn:
            table.drop(conn)
