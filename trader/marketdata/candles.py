"""Load recorded market data (candles or trade ticks) from CSV or parquet into one layout.

Accepted inputs:
- pyupbit's DataFrame dump: an unnamed first column with the candle start (KST), then
  `open,high,low,close,volume,value`;
- Upbit's REST candle layout: `candle_date_time_kst` (or `_utc`), `opening_price`,
  `high_price`, `low_price`, `trade_price`, `candle_acc_trade_volume`, `candle_acc_trade_price`;
- the normalised layout written by this module (`ts_ms,open,high,low,close,volume,value`);
- trade ticks: `timestamp,price,volume` (timestamp in ms or ISO), optionally `ask_bid`.

Candles come out oldest first with `ts_ms` = candle start as UTC epoch milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CANDLE_COLUMNS = ["ts_ms", "open", "high", "low", "close", "volume", "value"]
KST = "Asia/Seoul"

_REST_RENAMES = {
    "opening_price": "open",
    "high_price": "high",
    "low_price": "low",
    "trade_price": "close",
    "candle_acc_trade_volume": "volume",
    "candle_acc_trade_price": "value",
}


class MarketDataError(ValueError):
    """The file is missing, unreadable, or in no layout we know."""


def _read_any(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise MarketDataError(f"market data file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".gz"):
            return pd.read_csv(path)
    except Exception as exc:  # pandas raises many types; the user needs the file name
        raise MarketDataError(f"cannot read {path}: {exc}") from exc
    raise MarketDataError(f"unsupported market data format {suffix!r} (use .csv or .parquet): {path}")


def _kst_to_ms(values: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(values)
    if stamps.dt.tz is None:
        stamps = stamps.dt.tz_localize(KST)
    return stamps.dt.tz_convert("UTC").dt.as_unit("ms").astype("int64").to_numpy(dtype=np.int64)


def _utc_to_ms(values: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(values)
    if stamps.dt.tz is None:
        stamps = stamps.dt.tz_localize("UTC")
    return stamps.dt.tz_convert("UTC").dt.as_unit("ms").astype("int64").to_numpy(dtype=np.int64)


def is_tick_frame(frame: pd.DataFrame) -> bool:
    """True when the frame holds trade ticks rather than candles."""
    cols = set(frame.columns)
    return {"price", "volume"} <= cols and ("timestamp" in cols or "ts_ms" in cols) and "open" not in cols


def normalise_candles(frame: pd.DataFrame, source: str = "<frame>") -> pd.DataFrame:
    """Return candles in `CANDLE_COLUMNS` layout, oldest first, deduplicated by start time."""
    cols = list(frame.columns)
    if "ts_ms" in cols:
        out = frame.copy()
    elif "candle_date_time_kst" in cols or "candle_date_time_utc" in cols:
        out = frame.rename(columns=_REST_RENAMES)
        if "candle_date_time_kst" in cols:
            out["ts_ms"] = _kst_to_ms(out["candle_date_time_kst"])
        else:
            out["ts_ms"] = _utc_to_ms(out["candle_date_time_utc"])
    elif {"open", "high", "low", "close"} <= set(cols):
        first = cols[0]
        if first in ("open",):
            if isinstance(frame.index, pd.DatetimeIndex):
                out = frame.reset_index(names="__time")
                first = "__time"
            else:
                raise MarketDataError(f"{source}: candles have no time column")
        else:
            out = frame.copy()
        out["ts_ms"] = _kst_to_ms(out[first])
    else:
        raise MarketDataError(
            f"{source}: unknown candle layout (columns {cols[:8]}); expected pyupbit's "
            "',open,high,low,close,volume,value' or Upbit's REST candle fields"
        )
    missing = [c for c in ("open", "high", "low", "close") if c not in out.columns]
    if missing:
        raise MarketDataError(f"{source}: missing columns {missing}")
    if "volume" not in out.columns:
        out["volume"] = 1.0
    if "value" not in out.columns:
        out["value"] = out["volume"] * out["close"]
    out = out[CANDLE_COLUMNS].astype(
        {"ts_ms": "int64", "open": "float64", "high": "float64", "low": "float64",
         "close": "float64", "volume": "float64", "value": "float64"}
    )
    out = out.sort_values("ts_ms", kind="stable").drop_duplicates("ts_ms", keep="last")
    bad = (out["high"] < out[["open", "close", "low"]].max(axis=1)) | (
        out["low"] > out[["open", "close"]].min(axis=1)
    )
    if bad.any():
        row = out[bad].iloc[0]
        raise MarketDataError(
            f"{source}: inconsistent candle at ts_ms={int(row.ts_ms)} (high < low/open/close)"
        )
    return out.reset_index(drop=True)


def normalise_ticks(frame: pd.DataFrame, source: str = "<frame>") -> pd.DataFrame:
    """Return ticks as `ts_ms,price,volume,is_bid`, oldest first."""
    out = pd.DataFrame()
    if "ts_ms" in frame.columns:
        out["ts_ms"] = frame["ts_ms"].astype("int64")
    else:
        ts = frame["timestamp"]
        if pd.api.types.is_numeric_dtype(ts):
            out["ts_ms"] = ts.astype("int64")
        else:
            out["ts_ms"] = _utc_to_ms(ts)
    out["price"] = frame["price"].astype("float64")
    out["volume"] = frame["volume"].astype("float64")
    if "ask_bid" in frame.columns:
        out["is_bid"] = frame["ask_bid"].astype(str).str.upper().eq("BID")
    else:
        out["is_bid"] = np.r_[True, np.diff(out["price"].to_numpy()) >= 0]
    if (out["price"] <= 0).any():
        raise MarketDataError(f"{source}: non-positive price in ticks")
    return out.sort_values("ts_ms", kind="stable").reset_index(drop=True)


def load_frame(path: str | Path) -> tuple[str, pd.DataFrame]:
    """Load a file and say what it holds: ('candles', frame) or ('ticks', frame)."""
    path = Path(path)
    raw = _read_any(path)
    if raw.empty:
        raise MarketDataError(f"{path}: no rows")
    if is_tick_frame(raw):
        return "ticks", normalise_ticks(raw, str(path))
    return "candles", normalise_candles(raw, str(path))


def load_candles(path: str | Path) -> pd.DataFrame:
    """Load candles (raises MarketDataError if the file holds ticks)."""
    kind, frame = load_frame(path)
    if kind != "candles":
        raise MarketDataError(f"{path}: holds trade ticks, candles expected")
    return frame


def infer_interval_ms(candles: pd.DataFrame) -> int:
    """The candle interval: the most common gap between starts (gaps = minutes with no trades)."""
    if len(candles) < 2:
        return 60_000
    gaps = np.diff(candles["ts_ms"].to_numpy())
    gaps = gaps[gaps > 0]
    values, counts = np.unique(gaps, return_counts=True)
    return int(values[np.argmax(counts)])


def slice_time(frame: pd.DataFrame, start: str | None, end: str | None) -> pd.DataFrame:
    """Keep rows with start ≤ ts < end; dates are KST unless they carry an offset."""
    mask = np.ones(len(frame), dtype=bool)
    ts = frame["ts_ms"].to_numpy()
    if start:
        mask &= ts >= _kst_to_ms(pd.Series([start]))[0]
    if end:
        mask &= ts < _kst_to_ms(pd.Series([end]))[0]
    return frame[mask].reset_index(drop=True)
