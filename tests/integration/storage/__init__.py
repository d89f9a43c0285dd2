"""Storage integration tests (SQLite and PostgreSQL)."""
