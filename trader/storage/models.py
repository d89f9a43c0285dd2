"""SQLAlchemy 2.0 typed declarative models of the trading database.

Money and quantities use `ExactDecimal`: PostgreSQL's unconstrained NUMERIC (arbitrary
precision, keeps the digits given) and, on SQLite, TEXT holding the fixed-point string — SQLite
has no decimal type and its NUMERIC affinity would silently turn values into 64-bit floats.
Either way a `Decimal` comes back equal to the one stored. Times are int64 epoch milliseconds
(UTC). The DDL here and in `migrations/versions/` (0001_initial and the revisions after it) must
stay in step (a test compares them).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

# integer primary keys: BIGINT on PostgreSQL, INTEGER on SQLite (only that is a rowid alias)
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class ExactDecimal(TypeDecorator[Decimal]):
    """A Decimal column that round-trips exactly on PostgreSQL and SQLite."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("money columns take Decimal, never float")
        d = value if isinstance(value, Decimal) else Decimal(str(value))
        if not d.is_finite():
            raise ValueError(f"non-finite decimal {d!r}")
        return format(d, "f") if dialect.name == "sqlite" else d

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


class Base(DeclarativeBase):
    pass


class OrderModel(Base):
    """An order as we know it locally; recorded BEFORE it is sent (identifier first)."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    identifier: Mapped[str] = mapped_column(String(64))
    uuid: Mapped[str | None] = mapped_column(String(64))
    intent_id: Mapped[str] = mapped_column(String(128))
    market: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))
    ord_type: Mapped[str] = mapped_column(String(16))
    price: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    volume: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    krw_amount: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    executed_volume: Mapped[Decimal] = mapped_column(ExactDecimal())
    paid_fee: Mapped[Decimal] = mapped_column(ExactDecimal())
    avg_price: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    error: Mapped[str | None] = mapped_column(Text)
    created_ts_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ts_ms: Mapped[int] = mapped_column(BigInteger)
    # price of the trade that decided the order (a stop's trigger), so reports show slippage;
    # NULL for orders recorded before revision 0002 or without a deciding trade
    trigger_price: Mapped[Decimal | None] = mapped_column(ExactDecimal())

    __table_args__ = (
        UniqueConstraint("identifier", name="uq_orders_identifier"),
        UniqueConstraint("uuid", name="uq_orders_uuid"),
        Index("ix_orders_state", "state"),
        Index("ix_orders_created_ts_ms", "created_ts_ms"),
        Index("ix_orders_market", "market"),
    )


class FillModel(Base):
    """One execution; `trade_uuid` is unique (a fill is stored once). `id` is the order in
    which fills were recorded, i.e. the order in which the ledger applied them."""

    __tablename__ = "fills"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    trade_uuid: Mapped[str] = mapped_column(String(64))
    order_uuid: Mapped[str] = mapped_column(String(64))
    identifier: Mapped[str | None] = mapped_column(String(64))
    market: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))
    price: Mapped[Decimal] = mapped_column(ExactDecimal())
    volume: Mapped[Decimal] = mapped_column(ExactDecimal())
    funds: Mapped[Decimal] = mapped_column(ExactDecimal())
    fee: Mapped[Decimal] = mapped_column(ExactDecimal())
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text, default="")
    realized_pnl: Mapped[Decimal | None] = mapped_column(ExactDecimal())

    __table_args__ = (
        UniqueConstraint("trade_uuid", name="uq_fills_trade_uuid"),
        Index("ix_fills_ts_ms", "ts_ms"),
        Index("ix_fills_order_uuid", "order_uuid"),
        Index("ix_fills_market_ts_ms", "market", "ts_ms"),
    )


class PositionModel(Base):
    """The ledger's latest position per market (a snapshot; fills are the truth)."""

    __tablename__ = "positions"

    market: Mapped[str] = mapped_column(String(32), primary_key=True)
    volume: Mapped[Decimal] = mapped_column(ExactDecimal())
    avg_buy_price: Mapped[Decimal] = mapped_column(ExactDecimal())
    cost_fees_open: Mapped[Decimal] = mapped_column(ExactDecimal())
    realized_pnl: Mapped[Decimal] = mapped_column(ExactDecimal())
    fees_paid: Mapped[Decimal] = mapped_column(ExactDecimal())
    updated_ts_ms: Mapped[int] = mapped_column(BigInteger)


class BalanceSnapshotModel(Base):
    """Balances as the exchange reported them (`exchange`) or as the ledger had them (`ledger`)."""

    __tablename__ = "balance_snapshots"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(16))
    balance: Mapped[Decimal] = mapped_column(ExactDecimal())
    locked: Mapped[Decimal] = mapped_column(ExactDecimal())
    avg_buy_price: Mapped[Decimal] = mapped_column(ExactDecimal())
    source: Mapped[str] = mapped_column(String(16))

    __table_args__ = (Index("ix_balance_snapshots_ts_ms", "ts_ms"),)


class EquityPointModel(Base):
    """Equity over time (KRW + coin marked at `price`), for reports and charts."""

    __tablename__ = "equity_points"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    market: Mapped[str] = mapped_column(String(32))
    price: Mapped[Decimal] = mapped_column(ExactDecimal())
    krw: Mapped[Decimal] = mapped_column(ExactDecimal())
    coin_volume: Mapped[Decimal] = mapped_column(ExactDecimal())
    equity: Mapped[Decimal] = mapped_column(ExactDecimal())

    __table_args__ = (Index("ix_equity_points_ts_ms", "ts_ms"),)


class StrategyStateModel(Base):
    """A strategy's own state (cooldowns, trailing highs …) as JSON text, by strategy name."""

    __tablename__ = "strategy_state"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(Text)
    updated_ts_ms: Mapped[int] = mapped_column(BigInteger)


class EventLogModel(Base):
    """Audit trail: what the system did and why (JSON `data`, secrets never included)."""

    __tablename__ = "event_log"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    level: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_event_log_ts_ms", "ts_ms"), Index("ix_event_log_kind", "kind"))
