"""The trades cache synthesizes a file once; Optuna's storage is never the product's database."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import trader.optimize.cache as cache
from trader.marketdata.candles import load_candles
from trader.marketdata.synth import synthesize_trades
from trader.optimize.study import StorageError, check_storage

DATA = Path(__file__).resolve().parents[3] / "data" / "KRW-ETH_60m_2024.parquet"


@pytest.fixture
def counted(monkeypatch):
    calls: list[int] = []
    real = cache.synthesize_trades

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cache, "synthesize_trades", counting)
    cache.forget()
    yield calls
    cache.forget()


def test_second_load_does_not_synthesize(counted, tmp_path):
    first = cache.cached_trades(DATA, seed=3, ticks_per_candle=8, cache_dir=tmp_path)
    assert len(counted) == 1
    cache.forget()  # a fresh worker process: nothing in memory, the files on disk
    second = cache.cached_trades(DATA, seed=3, ticks_per_candle=8, cache_dir=tmp_path)
    assert len(counted) == 1
    assert isinstance(second.price, np.ndarray) and not second.price.flags.writeable  # mapped, read-only
    want = synthesize_trades(load_candles(DATA), ticks_per_candle=8, seed=3)
    for name in cache.COLUMNS:
        assert np.array_equal(getattr(second, name), getattr(want, name))
        assert np.array_equal(getattr(first, name), getattr(want, name))
    # another seed or ticks per candle is another entry
    cache.cached_trades(DATA, seed=4, ticks_per_candle=8, cache_dir=tmp_path)
    cache.cached_trades(DATA, seed=3, ticks_per_candle=6, cache_dir=tmp_path)
    assert len(counted) == 3
    assert len([p for p in tmp_path.iterdir() if p.is_dir() and "-seed" in p.name]) == 3
    # the loaded candles are cached too, and read back equal to loading the file
    frames = [p for p in tmp_path.iterdir() if "-frame-" in p.name]
    assert len(frames) == 1
    cache.forget()
    mf = cache.market_file(DATA, tmp_path)
    assert mf.frame.equals(load_candles(DATA)) and mf.interval_ms == 3_600_000


def test_product_database_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("TRADER_DATABASE_URL", "postgresql+psycopg2://trader:pw@db.example:5432/trader")
    with pytest.raises(StorageError, match="product's own database"):
        check_storage("postgresql://optuna@DB.example:5432/trader")
    check_storage("postgresql://optuna@db.example:5432/optuna")  # another database: fine
    monkeypatch.setenv("TRADER_DATABASE_URL", f"sqlite:///{tmp_path}/trader.db")
    with pytest.raises(StorageError, match="alembic_version"):
        check_storage(f"sqlite:///{tmp_path}/sub/../trader.db")
    check_storage(f"sqlite:///{tmp_path}/optuna.db")


def test_default_product_database_is_refused(monkeypatch, tmp_path):
    monkeypatch.delenv("TRADER_DATABASE_URL", raising=False)
    monkeypatch.setenv("TRADER_VAR_DIR", str(tmp_path))
    with pytest.raises(StorageError):
        check_storage(f"sqlite:///{tmp_path}/trader.db")
