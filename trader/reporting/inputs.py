"""What a report reads, gathered into one `ReportInputs`: from the database or parquet snapshots.

Reports never talk to the running engine. They need every fill from the first one up to the end
of the window (the ledger's average buy price depends on earlier buys), the equity points and
prices recorded by the engine, and the KRW the account started with. Tests build a
`ReportInputs` by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from trader.domain import Fill, Side

EQUITY_COLUMNS = ("ts_ms", "market", "price", "krw", "coin_volume", "equity")
PRICE_COLUMNS = ("ts_ms", "market", "price")


@dataclass
class ReportInputs:
    """Everything a report is computed from.

    fills: every fill up to the end of the window, any order (sorted by time when used).
    equity: engine-recorded equity points, columns ts_ms and equity (float KRW, account total)
        and optionally market/price/krw/coin_volume; may be empty (the curve is then derived
        from the fills and prices).
    prices: ts_ms, market, price (float) — mark prices for valuation and charts; fill prices
        are added automatically.
    starting_equity: KRW cash before the first fill.
    opening_holdings: coins held before the first fill, market → (volume, avg buy price);
        usually empty (the bot started from cash).
    positions: positions recorded by the engine at the window end (market → mapping), shown
        only as a cross-check; the report's positions come from replaying the fills.
    trigger_prices: order identifier → the price of the trade that decided the order (a
        stop's trigger), for the orders that recorded one; the exits table shows it next to
        the fill price.
    """

    fills: list[Fill]
    equity: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(EQUITY_COLUMNS)))
    prices: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(PRICE_COLUMNS)))
    starting_equity: Decimal = Decimal(0)
    opening_holdings: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    positions: dict[str, Any] = field(default_factory=dict)
    market: str | None = None
    trigger_prices: dict[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fills = sorted(self.fills, key=lambda f: f.ts_ms)  # stable: same-ms order is kept
        self.equity = _normalise_equity(self.equity)
        self.prices = _merge_prices(self.prices, self.equity, self.fills)


def _normalise_equity(df: pd.DataFrame | None) -> pd.DataFrame:
    if df is None or len(df) == 0:
        return pd.DataFrame({"ts_ms": pd.Series(dtype="int64"), "equity": pd.Series(dtype="float64")})
    out = df.copy()
    out["ts_ms"] = out["ts_ms"].astype("int64")
    for col in ("price", "krw", "coin_volume", "equity"):
        if col in out.columns:
            out[col] = out[col].astype("float64")
    return out.sort_values("ts_ms", kind="stable").reset_index(drop=True)


def _merge_prices(prices: pd.DataFrame | None, equity: pd.DataFrame, fills: list[Fill]) -> pd.DataFrame:
    parts = []
    if prices is not None and len(prices):
        parts.append(prices[list(PRICE_COLUMNS)])
    if len(equity) and {"market", "price"} <= set(equity.columns):
        parts.append(equity[list(PRICE_COLUMNS)].dropna())
    if fills:
        parts.append(
            pd.DataFrame(
                {
                    "ts_ms": [f.ts_ms for f in fills],
                    "market": [f.market for f in fills],
                    "price": [float(f.price) for f in fills],
                }
            )
        )
    if not parts:
        return pd.DataFrame(
            {
                "ts_ms": pd.Series(dtype="int64"),
                "market": pd.Series(dtype="object"),
                "price": pd.Series(dtype="float64"),
            }
        )
    out = pd.concat(parts, ignore_index=True)
    out["ts_ms"] = out["ts_ms"].astype("int64")
    out["price"] = out["price"].astype("float64")
    out["market"] = out["market"].astype("object")
    return out.sort_values("ts_ms", kind="stable").reset_index(drop=True)


# --- sources -----------------------------------------------------------------------------------
def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def fills_from_frame(df: pd.DataFrame) -> list[Fill]:
    """Rows with the `Fill` field names (numbers as str/Decimal/float) → `Fill`s."""
    out: list[Fill] = []
    if df is None or len(df) == 0:
        return out
    cols = set(df.columns)

    def money(row: dict[str, Any], name: str) -> Decimal:
        # snapshots carry `<name>_exact` (the decimal as text) next to the float column
        exact = row.get(f"{name}_exact")
        return _dec(exact) if exact not in (None, "") and not pd.isna(exact) else _dec(row[name])

    for row in df.to_dict("records"):
        price, volume = money(row, "price"), money(row, "volume")
        out.append(
            Fill(
                trade_uuid=str(row["trade_uuid"]),
                order_uuid=str(row.get("order_uuid", "") or ""),
                market=str(row["market"]),
                side=Side(str(row["side"])),
                price=price,
                volume=volume,
                funds=money(row, "funds") if "funds" in cols else price * volume,
                fee=money(row, "fee"),
                ts_ms=int(row["ts_ms"]),
                reason=str(row.get("reason", "") or ""),
                identifier=_text_or_none(row.get("identifier")),
            )
        )
    return out


def _text_or_none(value: Any) -> str | None:
    if value is None or value == "" or (isinstance(value, float) and pd.isna(value)):
        return None
    return str(value)


def _starting_equity_guess(equity: pd.DataFrame, fills: list[Fill]) -> Decimal:
    """KRW before the first fill, from the first equity point: its KRW minus the cash moved by
    the fills before it (when the point precedes every fill, simply its KRW)."""
    if len(equity) == 0:
        return Decimal(0)
    first = equity.iloc[0]
    ts = int(first["ts_ms"])
    if "krw" in equity.columns and pd.notna(first["krw"]):
        krw = Decimal(repr(float(first["krw"])))
    elif all(f.ts_ms >= ts for f in fills):
        return Decimal(repr(float(first["equity"])))
    else:
        return Decimal(0)
    for f in fills:
        if f.ts_ms < ts:
            krw += (f.funds + f.fee) if f.side is Side.BID else -(f.funds - f.fee)
    return krw


def load_inputs_from_db(
    url: str,
    start_ms: int,
    end_ms: int,
    market: str | None = None,
    *,
    starting_equity: Decimal | None = None,
) -> ReportInputs:
    """Read fills (from the very first one, so the ledger replays exactly) and equity up to
    `end_ms` from the database. `start_ms` only documents the window: history before it is
    needed for the average buy price and the since-start figures.
    """
    from trader.storage.db import Database
    from trader.storage.repository import Repository

    del start_ms  # the whole history up to end_ms is needed (see docstring)
    db = Database.open(url)
    try:
        repo = Repository(db)
        fills = repo.fills(0, end_ms, market)
        equity = repo.equity_frame(0, end_ms)
        prices = None
        if market is not None and len(equity) and "market" in equity.columns:
            several = equity["market"].nunique() > 1
            equity = equity[equity["market"] == market]
            if several:
                # recorded equity is the account's total: for one market of several, keep only its
                # prices and let the curve be derived from that market's fills
                prices, equity = equity[list(PRICE_COLUMNS)], None
        positions = _positions_dict(repo)
        triggers = repo.fill_trigger_prices(None, end_ms, market)
        start_eq = starting_equity
        opening: dict[str, tuple[Decimal, Decimal]] = {}
        if start_eq is None and (found := _repo_opening(repo, fills)) is not None:
            start_eq, opening = found
            if market is not None:
                opening = {m: v for m, v in opening.items() if m == market}
        if start_eq is None:
            start_eq = _starting_equity_guess(_normalise_equity(equity), fills)
    finally:
        close = getattr(db, "close", None) or getattr(db, "dispose", None)
        if close:
            close()
    return ReportInputs(
        fills=fills,
        equity=_normalise_equity(equity),
        prices=prices if prices is not None else _merge_prices(None, _normalise_equity(None), []),
        starting_equity=start_eq,
        opening_holdings=opening,
        positions=positions,
        market=market,
        trigger_prices=triggers,
    )


def _repo_opening(repo: Any, fills: list[Fill]) -> tuple[Decimal, dict[str, tuple[Decimal, Decimal]]] | None:
    """KRW and coins of the last balance snapshot taken before the first fill (balance + locked)."""
    first_fill = min((f.ts_ms for f in fills), default=None)
    try:
        snaps = list(repo.balance_snapshots(None, first_fill))
    except Exception:  # an older schema without snapshots: fall back to the equity points
        return None
    krw_rows = [s for s in snaps if str(_field(s, "currency", "")) == "KRW"]
    if not krw_rows:
        return None
    ts = max(int(_field(s, "ts_ms", 0)) for s in krw_rows)
    krw = Decimal(0)
    holdings: dict[str, tuple[Decimal, Decimal]] = {}
    for snap in snaps:
        if int(_field(snap, "ts_ms", 0)) != ts:
            continue
        currency = str(_field(snap, "currency", ""))
        amount = _dec(_field(snap, "balance", 0)) + _dec(_field(snap, "locked", 0) or 0)
        if currency == "KRW":
            krw = amount
        elif amount > 0:
            holdings[f"KRW-{currency}"] = (amount, _dec(_field(snap, "avg_buy_price", 0) or 0))
    return krw, holdings


def _field(obj: Any, name: str, default: Any) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _positions_dict(repo: Any) -> dict[str, Any]:
    try:
        rows = repo.positions()
    except Exception:  # positions are only a cross-check; a report must not fail on them
        return {}
    if isinstance(rows, dict):
        return dict(rows)
    out: dict[str, Any] = {}
    for row in rows or []:
        out[str(_field(row, "market", "?"))] = row
    return out


def load_inputs_from_snapshots(
    snap_dir: Path | str,
    end_ms: int,
    market: str | None = None,
    *,
    starting_equity: Decimal | None = None,
) -> ReportInputs:
    """Read the parquet snapshots (`fills/date=YYYY-MM-DD/*.parquet`, `equity/...`) up to `end_ms`."""
    root = Path(snap_dir)
    fills_df = _read_parquet_dir(root / "fills")
    if len(fills_df):
        fills_df = fills_df[fills_df["ts_ms"].astype("int64") < end_ms]
        if market is not None:
            fills_df = fills_df[fills_df["market"] == market]
        # a snapshot may be written twice (re-run of the snapshot flow): one row per trade
        fills_df = fills_df.drop_duplicates("trade_uuid", keep="last")
    fills = fills_from_frame(fills_df)
    equity = _read_parquet_dir(root / "equity")
    if len(equity):
        equity = equity[equity["ts_ms"].astype("int64") < end_ms]
        if market is not None and "market" in equity.columns:
            equity = equity[equity["market"] == market]
        equity = equity.drop_duplicates([c for c in ("ts_ms", "market") if c in equity.columns], keep="last")
    start_eq = starting_equity
    if start_eq is None:
        start_eq = _starting_equity_guess(_normalise_equity(equity), fills)
    return ReportInputs(fills=fills, equity=equity, starting_equity=start_eq, market=market)


def _read_parquet_dir(path: Path) -> pd.DataFrame:
    # dot- or underscore-prefixed files are a writer's temp files (see trader.storage.parquet)
    files = sorted(
        f for f in (path.rglob("*.parquet") if path.is_dir() else []) if not f.name.startswith((".", "_"))
    )
    if not files:
        return pd.DataFrame()
    frames = [pd.read_parquet(f) for f in files]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    return df.drop(columns=[c for c in ("date",) if c in df.columns])
