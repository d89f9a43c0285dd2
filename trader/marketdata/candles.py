"""Load recorded market data (candles or trade ticks) from CSV or parquet into one layout.

Accepted inputs:
- pyupbit's DataFrame dump: an unnamed first column with the candle start (KST), then
  `open,high,low,close,volume,value`;
- Upbit's REST candle layout: `candle_date_time_kst` (or `_utc`), `opening_price`,
  `high_price`, `low_price`, `trade_price`, `candle_acc_trade_volume`, `candle_acc_trade_price`;
- the normalised layout written by this module (`ts_ms,open,high,low,close,volume,value`);
- trade ticks: `timestamp,price,volume` (timestamp in ms or ISO), optionally `ask_bid`.

Candles come out oldest first with `ts_ms` = candle start as UTC epoch milliseconds. A bad cell
(a date that is none, text or NaN where a price goes, a negative price, high below low) is refused
with a `MarketDataError` naming the file, its line (CSV) or row (parquet) and the column.

`market_of_file` says which market a file holds (its `market` column, else its name's prefix),
and `check_data_market` refuses a strategy or simulator market that is not the file's.
"""

from __future__ import annotations

import re
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


# a market at the start of a file name, before `_` or `.`: KRW-ETH_15m_2024.parquet -> KRW-ETH
_NAME_MARKET_RE = re.compile(r"^([A-Z]{2,5}-[A-Z0-9]{1,15})(?=[_.])")


def market_of_file(path: str | Path) -> str | None:
    """The market a data file holds: its `market` column's single value if it has one, else its
    name's prefix (KRW-ETH_15m_2024.parquet -> KRW-ETH); None when neither says (allowed)."""
    path = Path(path)
    column = _market_column(path)
    if column is not None:
        return column
    m = _NAME_MARKET_RE.match(path.name)
    return m.group(1) if m else None


def _market_column(path: Path) -> str | None:
    if not path.exists():
        return None
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            if "market" not in pq.read_schema(path).names:
                return None
            values = pd.read_parquet(path, columns=["market"])["market"]
        elif suffix in (".csv", ".txt", ".gz"):
            if "market" not in pd.read_csv(path, nrows=0).columns:
                return None
            values = pd.read_csv(path, usecols=["market"], dtype=str)["market"]
        else:
            return None
    except Exception as exc:  # unreadable: load_frame names the problem; here the user needs the file
        raise MarketDataError(f"cannot read {path}: {exc}") from exc
    markets = sorted({str(v) for v in values.dropna().unique()})
    if len(markets) > 1:
        raise MarketDataError(f"{path}: column market holds several markets {markets[:5]}; "
                              "one file holds one market")
    return markets[0] if markets else None


def check_data_market(market: str, path: str | Path, *, what: str = "the strategy's market",
                      fix: str = "") -> None:
    """Refuse `market` when the data file holds another (a file that says nothing is allowed)."""
    held = market_of_file(path)
    if held is not None and held != market:
        hint = fix or f"give a {market} data file, or a strategy for {held}"
        raise MarketDataError(f"market: {what} is {market} but the data file {path} holds {held}; {hint}")


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


def _where(source: str, pos: int) -> str:
    """A row's place as the user finds it: the CSV line (header = line 1) or the parquet row."""
    if source.lower().endswith((".csv", ".txt", ".gz")):
        return f"{source} line {pos + 2}"
    return f"{source} row {pos + 1}"


def _to_ms(values: pd.Series, zone: str, source: str, column: str) -> np.ndarray:
    try:
        stamps = pd.to_datetime(values, errors="coerce")
        if not isinstance(stamps.dtype, pd.DatetimeTZDtype | np.dtypes.DateTime64DType):
            raise TypeError("mixed time zones")
        if stamps.dt.tz is None:
            stamps = stamps.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    except (TypeError, ValueError, OverflowError) as exc:
        raise MarketDataError(f"{source}: column {column}: not one kind of date/time ({exc})") from None
    bad = stamps.isna().to_numpy()
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise MarketDataError(f"{_where(source, pos)}: column {column}: {_shown(values.iloc[pos])} is not "
                              "a date/time")
    return stamps.dt.tz_convert("UTC").dt.as_unit("ms").astype("int64").to_numpy(dtype=np.int64)


def _kst_to_ms(values: pd.Series, source: str = "<dates>", column: str = "time") -> np.ndarray:
    return _to_ms(values, KST, source, column)


def _utc_to_ms(values: pd.Series, source: str = "<dates>", column: str = "time") -> np.ndarray:
    return _to_ms(values, "UTC", source, column)


def _numbers(frame: pd.DataFrame, column: str, source: str, *, positive: bool) -> np.ndarray:
    """A column as float64: text, NaN, inf or a negative (zero too when `positive`) is refused."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | ((values <= 0) if positive else (values < 0))
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        want = "a positive number" if positive else "a number ≥ 0"
        shown = _shown(raw.iloc[pos])
        raise MarketDataError(f"{_where(source, pos)}: column {column}: {shown} is not {want}")
    return values


def _shown(value: object) -> str:
    """A cell as the user wrote it: 'abc', -1.0, or 'an empty cell or NaN'."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and value != value):
        return "an empty cell or NaN"
    return repr(value)


def is_tick_frame(frame: pd.DataFrame) -> bool:
    """True when the frame holds trade ticks rather than candles."""
    cols = set(frame.columns)
    return {"price", "volume"} <= cols and ("timestamp" in cols or "ts_ms" in cols) and "open" not in cols


def normalise_candles(frame: pd.DataFrame, source: str = "<frame>") -> pd.DataFrame:
    """Return candles in `CANDLE_COLUMNS` layout, oldest first, deduplicated by start time."""
    cols = list(frame.columns)
    frame = frame.reset_index(drop=not isinstance(frame.index, pd.DatetimeIndex), names="__time")
    if "ts_ms" in cols:
        ts = _numbers(frame, "ts_ms", source, positive=True)
        if (ts != np.floor(ts)).any() or (ts > 2**53).any():
            pos = int(np.flatnonzero((ts != np.floor(ts)) | (ts > 2**53))[0])
            raise MarketDataError(f"{_where(source, pos)}: column ts_ms: {ts[pos]!r} is not epoch "
                                  "milliseconds")
        out = frame.copy()
        out["ts_ms"] = ts.astype(np.int64)
    elif "candle_date_time_kst" in cols or "candle_date_time_utc" in cols:
        out = frame.rename(columns=_REST_RENAMES)
        if "candle_date_time_kst" in cols:
            out["ts_ms"] = _kst_to_ms(out["candle_date_time_kst"], source, "candle_date_time_kst")
        else:
            out["ts_ms"] = _utc_to_ms(out["candle_date_time_utc"], source, "candle_date_time_utc")
    elif {"open", "high", "low", "close"} <= set(cols):
        first = "__time" if "__time" in frame.columns else cols[0]
        if first == "open":
            raise MarketDataError(f"{source}: candles have no time column")
        out = frame.copy()
        out["ts_ms"] = _kst_to_ms(out[first], source, first if first != "__time" else "index")
    else:
        raise MarketDataError(
            f"{source}: unknown candle layout (columns {cols[:8]}); expected pyupbit's "
            "',open,high,low,close,volume,value' or Upbit's REST candle fields"
        )
    missing = [c for c in ("open", "high", "low", "close") if c not in out.columns]
    if missing:
        raise MarketDataError(f"{source}: missing columns {missing}")
    for c in ("open", "high", "low", "close"):
        out[c] = _numbers(out, c, source, positive=True)
    if "volume" not in out.columns:
        out["volume"] = 1.0
    out["volume"] = _numbers(out, "volume", source, positive=False)
    if "value" not in out.columns:
        out["value"] = out["volume"] * out["close"]
    out["value"] = _numbers(out, "value", source, positive=False)
    out["__pos"] = np.arange(len(out))
    out = out[[*CANDLE_COLUMNS, "__pos"]].astype(
        {"ts_ms": "int64", "open": "float64", "high": "float64", "low": "float64",
         "close": "float64", "volume": "float64", "value": "float64"}
    )
    out = out.sort_values("ts_ms", kind="stable").drop_duplicates("ts_ms", keep="last")
    bad_high = out["high"] < out[["open", "close", "low"]].max(axis=1)
    bad_low = out["low"] > out[["open", "close"]].min(axis=1)
    if (bad_high | bad_low).any():
        row = out[bad_high | bad_low].iloc[0]
        column = "high" if bool(bad_high[bad_high | bad_low].iloc[0]) else "low"
        raise MarketDataError(
            f"{_where(source, int(row['__pos']))}: column {column}: inconsistent candle at "
            f"ts_ms={int(row.ts_ms)} (open {row.open:g}, high {row.high:g}, low {row.low:g}, "
            f"close {row.close:g}: high must be the highest, low the lowest)"
        )
    out = out.drop(columns="__pos")
    return out.reset_index(drop=True)


def normalise_ticks(frame: pd.DataFrame, source: str = "<frame>") -> pd.DataFrame:
    """Return ticks as `ts_ms,price,volume,is_bid`, oldest first."""
    frame = frame.reset_index(drop=True)
    out = pd.DataFrame()
    if "ts_ms" in frame.columns:
        out["ts_ms"] = _numbers(frame, "ts_ms", source, positive=True).astype(np.int64)
    else:
        ts = frame["timestamp"]
        if pd.api.types.is_numeric_dtype(ts):
            out["ts_ms"] = _numbers(frame, "timestamp", source, positive=True).astype(np.int64)
        else:
            out["ts_ms"] = _utc_to_ms(ts, source, "timestamp")
    out["price"] = _numbers(frame, "price", source, positive=True)
    out["volume"] = _numbers(frame, "volume", source, positive=False)
    if "ask_bid" in frame.columns:
        out["is_bid"] = frame["ask_bid"].astype(str).str.upper().eq("BID")
    else:
        out["is_bid"] = np.r_[True, np.diff(out["price"].to_numpy()) >= 0]
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
        mask &= ts >= _kst_to_ms(pd.Series([start]), "--from", "start")[0]
    if end:
        mask &= ts < _kst_to_ms(pd.Series([end]), "--to", "end")[0]
    return frame[mask].reset_index(drop=True)
