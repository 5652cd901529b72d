"""Column types that keep Entrepot's rules on both backends.

`Exact` stores decimals exactly: NUMERIC(20,4) on PostgreSQL, a scaled integer
on SQLite (whose NUMERIC affinity would turn them into floats). Sums and
comparisons done in SQL stay exact on both, because SQL sums integers exactly
and the result is scaled back here. Never multiply two Exact columns in SQL:
on SQLite the scale would square; do products in Python.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Numeric
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from entrepot.kernel.money import STORAGE_PLACES, to_decimal

_SCALE = Decimal(10) ** STORAGE_PLACES


class Exact(TypeDecorator[Decimal]):
    impl = Numeric(20, STORAGE_PLACES)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(20, STORAGE_PLACES, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = value if type(value) is Decimal and value.is_finite() else to_decimal(value)
        if dialect.name == "sqlite":
            return int((amount * _SCALE).to_integral_value(rounding=ROUND_HALF_UP))
        return amount.quantize(Decimal(1) / _SCALE, rounding=ROUND_HALF_UP)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-STORAGE_PLACES)  # exact: only the exponent moves
        return Decimal(value)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use entrepot.kernel.clock.now()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JsonDocument = JSON().with_variant(JSONB(), "postgresql")
