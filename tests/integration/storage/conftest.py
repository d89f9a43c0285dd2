"""Fixtures: a fresh database per test on SQLite (tmp_path) and on PostgreSQL (a unique schema
of TRADER_TEST_PG_URL / the local server, dropped afterwards). PostgreSQL unreachable → skip,
except under CI=true where it fails."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from trader.storage.db import Database
from trader.storage.repository import Repository

PG_BASE_URL = os.environ.get("TRADER_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def _pg_admin_engine():  # type: ignore[no-untyped-def]
    engine = create_engine(PG_BASE_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as c:
            c.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect means "no server"
        engine.dispose()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL unreachable at {make_url(PG_BASE_URL).render_as_string()}: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {make_url(PG_BASE_URL).render_as_string()}")
    return engine


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A URL whose search_path is a fresh schema; the schema is dropped after the test."""
    admin = _pg_admin_engine()
    schema = f"t_storage_{uuid.uuid4().hex[:16]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_BASE_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sub' / 'trader.db'}"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database.open(db_url)
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def repo(db: Database) -> Repository:
    return Repository(db)
