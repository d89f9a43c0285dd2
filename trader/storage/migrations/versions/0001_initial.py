"""Initial schema: orders, fills, positions, balance snapshots, equity, strategy state, events.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Money columns: NUMERIC (unconstrained, exact) on PostgreSQL, TEXT (fixed-point string) on
SQLite — the DDL of `trader.storage.models.ExactDecimal`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _money() -> sa.types.TypeEngine:
    return sa.Numeric().with_variant(sa.Text(), "sqlite")


def _pk() -> sa.Column:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                     autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "orders",
        _pk(),
        sa.Column("identifier", sa.String(64), nullable=False),
        sa.Column("uuid", sa.String(64), nullable=True),
        sa.Column("intent_id", sa.String(128), nullable=False),
        sa.Column("market", sa.String(32), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("ord_type", sa.String(16), nullable=False),
        sa.Column("price", _money(), nullable=True),
        sa.Column("volume", _money(), nullable=True),
        sa.Column("krw_amount", _money(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("executed_volume", _money(), nullable=False),
        sa.Column("paid_fee", _money(), nullable=False),
        sa.Column("avg_price", _money(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ts_ms", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("identifier", name="uq_orders_identifier"),
        sa.UniqueConstraint("uuid", name="uq_orders_uuid"),
    )
    op.create_index("ix_orders_state", "orders", ["state"])
    op.create_index("ix_orders_created_ts_ms", "orders", ["created_ts_ms"])
    op.create_index("ix_orders_market", "orders", ["market"])

    op.create_table(
        "fills",
        _pk(),
        sa.Column("trade_uuid", sa.String(64), nullable=False),
        sa.Column("order_uuid", sa.String(64), nullable=False),
        sa.Column("identifier", sa.String(64), nullable=True),
        sa.Column("market", sa.String(32), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("price", _money(), nullable=False),
        sa.Column("volume", _money(), nullable=False),
        sa.Column("funds", _money(), nullable=False),
        sa.Column("fee", _money(), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("realized_pnl", _money(), nullable=True),
        sa.UniqueConstraint("trade_uuid", name="uq_fills_trade_uuid"),
    )
    op.create_index("ix_fills_ts_ms", "fills", ["ts_ms"])
    op.create_index("ix_fills_order_uuid", "fills", ["order_uuid"])
    op.create_index("ix_fills_market_ts_ms", "fills", ["market", "ts_ms"])

    op.create_table(
        "positions",
        sa.Column("market", sa.String(32), primary_key=True),
        sa.Column("volume", _money(), nullable=False),
        sa.Column("avg_buy_price", _money(), nullable=False),
        sa.Column("cost_fees_open", _money(), nullable=False),
        sa.Column("realized_pnl", _money(), nullable=False),
        sa.Column("fees_paid", _money(), nullable=False),
        sa.Column("updated_ts_ms", sa.BigInteger(), nullable=False),
    )

    op.create_table(
        "balance_snapshots",
        _pk(),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("balance", _money(), nullable=False),
        sa.Column("locked", _money(), nullable=False),
        sa.Column("avg_buy_price", _money(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
    )
    op.create_index("ix_balance_snapshots_ts_ms", "balance_snapshots", ["ts_ms"])

    op.create_table(
        "equity_points",
        _pk(),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("market", sa.String(32), nullable=False),
        sa.Column("price", _money(), nullable=False),
        sa.Column("krw", _money(), nullable=False),
        sa.Column("coin_volume", _money(), nullable=False),
        sa.Column("equity", _money(), nullable=False),
    )
    op.create_index("ix_equity_points_ts_ms", "equity_points", ["ts_ms"])

    op.create_table(
        "strategy_state",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_ts_ms", sa.BigInteger(), nullable=False),
    )

    op.create_table(
        "event_log",
        _pk(),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=True),
    )
    op.create_index("ix_event_log_ts_ms", "event_log", ["ts_ms"])
    op.create_index("ix_event_log_kind", "event_log", ["kind"])


def downgrade() -> None:
    for table in ("event_log", "strategy_state", "equity_points", "balance_snapshots", "positions",
                  "fills", "orders"):
        op.drop_table(table)
