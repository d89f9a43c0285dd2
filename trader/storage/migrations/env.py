"""Alembic environment: runs on the connection `trader.storage.migrate` hands over.

The configuration is built in code (no alembic.ini); `config.attributes["connection"]` is an
open connection already inside the transaction (and, on PostgreSQL, the advisory lock) that
`migrate.upgrade` holds, so a migration and its version stamp commit together.
"""

from __future__ import annotations

from alembic import context

from trader.storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through trader.storage.migrate.upgrade(engine)")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTERs go through batch mode
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
