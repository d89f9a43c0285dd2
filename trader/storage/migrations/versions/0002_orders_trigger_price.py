"""orders.trigger_price: the price of the trade that decided the order (nullable).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

Orders recorded before this revision keep NULL (their trigger was not stored). Money column:
NUMERIC on PostgreSQL, TEXT on SQLite, as `trader.storage.models.ExactDecimal`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a nullable column without default: a plain ALTER on both databases (no table copy)
    op.add_column("orders", sa.Column("trigger_price", sa.Numeric().with_variant(sa.Text(), "sqlite"),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:  # SQLite: batch mode copies the table
        batch.drop_column("trigger_price")
