"""Migrations: open runs them, running them again is a no-op, and the migrated schema is exactly
what the models declare (so models and the revisions cannot drift apart)."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from trader.storage import migrate
from trader.storage.db import Database
from trader.storage.models import Base

TABLES = {"orders", "fills", "positions", "balance_snapshots", "equity_points", "strategy_state", "event_log"}


def _schema(db: Database) -> dict[str, object]:
    insp = inspect(db.engine)
    return {
        t: (
            [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)],
            sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(t)),
            sorted((u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(t)),
        )
        for t in sorted(insp.get_table_names())
    }


def test_open_migrates_to_head_and_reopen_is_a_no_op(db_url: str) -> None:
    db = Database.open(db_url)
    try:
        assert set(inspect(db.engine).get_table_names()) >= TABLES
        assert migrate.current_revision(db.engine) == migrate.head_revision() == "0002"
        before = _schema(db)
        migrate.upgrade(db.engine)  # explicitly, a second and third time
        migrate.upgrade(db.engine)
        assert _schema(db) == before
    finally:
        db.close()
    db = Database.open(db_url)  # and again through open
    try:
        assert _schema(db) == before
        assert migrate.current_revision(db.engine) == "0002"
    finally:
        db.close()


def test_models_match_migrations(db: Database) -> None:
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, Base.metadata)
    assert diffs == []


def test_indexes_for_the_hot_queries(db: Database) -> None:
    insp = inspect(db.engine)
    fill_idx = {tuple(i["column_names"]) for i in insp.get_indexes("fills")}
    order_idx = {tuple(i["column_names"]) for i in insp.get_indexes("orders")}
    assert ("ts_ms",) in fill_idx and ("state",) in order_idx
    uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("fills")}
    uniques |= {tuple(i["column_names"]) for i in insp.get_indexes("fills") if i["unique"]}
    assert ("trade_uuid",) in uniques


def test_downgrade_and_upgrade_again(db: Database) -> None:
    migrate.downgrade(db.engine, "base")
    assert not TABLES & set(inspect(db.engine).get_table_names())
    migrate.upgrade(db.engine)
    assert set(inspect(db.engine).get_table_names()) >= TABLES


def test_sqlite_file_dir_created_and_wal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'b' / 'trader.db'}"
    with Database.open(url) as db:
        with db.engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
        assert (tmp_path / "a" / "b" / "trader.db").exists()


def test_in_memory_sqlite_is_shared_across_threads() -> None:
    import threading

    from trader.storage.repository import Repository

    with Database.open("sqlite://") as db:
        repo = Repository(db)
        t = threading.Thread(target=repo.log_event, args=(1, "k", "from a thread"))
        t.start()
        t.join()
        assert [e.message for e in repo.events()] == ["from a thread"]


def test_url_is_redacted() -> None:
    from trader.storage.db import redact_url

    assert redact_url("postgresql+psycopg2://bob:s3cret@db:5432/x") == "postgresql+psycopg2://bob:***@db:5432/x"
