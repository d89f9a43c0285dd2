"""Storage: SQLAlchemy models, repository, migrations and parquet snapshots."""
