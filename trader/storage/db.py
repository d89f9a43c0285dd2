"""The database handle: one Engine per process, a short Session per repository call.

`Database.open(url)` creates the directory of a SQLite file, tunes SQLite for a live loop that
writes from worker threads (WAL journal, busy_timeout, write transactions that take the write
lock up front) and migrates to the head revision. PostgreSQL URLs
(`postgresql+psycopg2://user@host:5432/db`) work the same; a `?options=-csearch_path%3Dschema`
query selects a schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from trader.storage import migrate

SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE_OPTION = "trader_write"


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, safe to log."""
    return make_url(url).render_as_string(hide_password=True)


def _configure_sqlite(engine: Engine) -> None:
    """WAL + busy_timeout on every connection; we emit BEGIN ourselves (pysqlite's own
    transaction handling defers the write lock, which in WAL mode can fail with SQLITE_BUSY
    instead of waiting when a read transaction later tries to write)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # autocommit at the driver; BEGIN comes from "begin"
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")  # a committed fill survives power loss
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # writers take the lock at BEGIN, where busy_timeout applies; readers stay concurrent
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """An Engine plus session factories for reads and writes. Thread-safe."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._write_engine = engine.execution_options(**{_WRITE_OPTION: True})
        self._read = sessionmaker(bind=engine, expire_on_commit=False)
        self._write = sessionmaker(bind=self._write_engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, migrate_to_head: bool = True, echo: bool = False) -> Database:
        """Connect (creating a SQLite file's directory), then migrate to head."""
        u = make_url(url)
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if u.get_backend_name() == "sqlite":
            database = u.database or ""
            in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
            if in_memory:
                kwargs["poolclass"] = StaticPool  # one shared connection, or each would be empty
            else:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs["pool_pre_ping"] = True
        engine = create_engine(u, **kwargs)
        if u.get_backend_name() == "sqlite":
            _configure_sqlite(engine)
        db = cls(engine)
        if migrate_to_head:
            migrate.upgrade(db._write_engine)
        return db

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        """The URL, password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in a transaction that commits on success and rolls back on error."""
        with self._write() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
