"""A hand-built ledger with known answers (computed by hand in the comments below).

Trading day 2024-03-05 (09:00 KST = 00:00 UTC start). Fee 0.05 %. Start KRW 1,000,000.
  F1 2024-03-04 10:00 KST  buy  0.01  BTC @ 50,000,000  funds 500,000  fee 250      (day before)
  F2 day+1h                sell 0.005 @ 52,000,000 take_profit_1  funds 260,000 fee 130
       realized = 260,000 − 130 − 0.005×50,000,000 − 250×½ = 9,745
  F3 day+2h                sell 0.005 @ 49,000,000 stop_loss      funds 245,000 fee 122.5
       realized = 245,000 − 122.5 − 250,000 − 125 = −5,247.5    → round trip 1: +4,497.5
  F4 day+3h                buy  0.01  @ 48,000,000 entry          funds 480,000 fee 240
  F5 day+5h                sell 0.01  @ 47,000,000 trailing_stop  funds 470,000 fee 235
       realized = 470,000 − 235 − 480,000 − 240 = −10,475        → round trip 2: −10,475
  F6 day+6h                buy  0.002 @ 47,500,000 entry          funds 95,000  fee 47.5 (open)
Mark prices: 51,000,000 one hour before the day starts, 48,000,000 one hour before it ends.
KRW: 1,000,000 − 500,250 = 499,750 → +259,870 → +244,877.5 → −480,240 → +469,765 → −95,047.5
     = 898,975 at the end.
Start equity = 499,750 + 0.01 × 51,000,000 = 1,009,750; end = 898,975 + 0.002 × 48,000,000 = 994,975.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pandas as pd
import pytest

from trader.domain import Fill, Side
from trader.reporting.inputs import ReportInputs
from trader.reporting.periods import day_start_ms

H = 3_600_000
DAY = date(2024, 3, 5)
S = day_start_ms(DAY)
FEE = Decimal("0.0005")


def make_fill(
    i: int, side: Side, volume: str, price: str, ts: int, reason: str, market: str = "KRW-BTC"
) -> Fill:
    vol, px = Decimal(volume), Decimal(price)
    funds = vol * px
    return Fill(f"t{i}", f"o{i}", market, side, px, vol, funds, funds * FEE, ts, reason)


def case_fills() -> list[Fill]:
    return [
        make_fill(1, Side.BID, "0.01", "50000000", S - 23 * H, "entry"),
        make_fill(2, Side.ASK, "0.005", "52000000", S + H, "take_profit_1"),
        make_fill(3, Side.ASK, "0.005", "49000000", S + 2 * H, "stop_loss"),
        make_fill(4, Side.BID, "0.01", "48000000", S + 3 * H, "entry"),
        make_fill(5, Side.ASK, "0.01", "47000000", S + 5 * H, "trailing_stop"),
        make_fill(6, Side.BID, "0.002", "47500000", S + 6 * H, "entry"),
    ]


def case_prices() -> pd.DataFrame:
    return pd.DataFrame({"ts_ms": [S - H, S + 23 * H], "market": ["KRW-BTC"] * 2, "price": [51e6, 48e6]})


def case_inputs() -> ReportInputs:
    return ReportInputs(fills=case_fills(), prices=case_prices(), starting_equity=Decimal(1_000_000))


@pytest.fixture
def inputs() -> ReportInputs:
    return case_inputs()
