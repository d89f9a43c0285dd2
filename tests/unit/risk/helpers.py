"""Intents and views for the risk-gate tests."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from trader.domain import Intent, IntentKind
from trader.risk import RiskView

DAY = 86_400_000
T0 = 20_000 * DAY  # 2024-10-04 00:00 UTC = 09:00 KST
_ids = iter(range(10**9))


def buy(market: str = "KRW-BTC", krw: int | str = 100_000, ts: int = T0) -> Intent:
    return Intent(market, IntentKind.BUY, "entry", ts, f"b{next(_ids)}", krw=Decimal(krw))


def sell(market: str = "KRW-BTC", reason: str = "stop_loss", ts: int = T0, partial: bool = False,
         intent_id: str | None = None) -> Intent:
    kind = IntentKind.SELL_PARTIAL if partial else IntentKind.SELL
    return Intent(market, kind, reason, ts, intent_id or f"s{next(_ids)}", volume=Decimal("0.01"))


def view(ts: int = T0, equity: int | str = 1_000_000, free: int | str | None = None,
         positions: Mapping[str, int | str] | None = None, open_: int | None = None) -> RiskView:
    pos = {m: Decimal(v) for m, v in (positions or {}).items()}
    free_d = Decimal(equity) - sum(pos.values(), Decimal(0)) if free is None else Decimal(free)
    count = sum(1 for v in pos.values() if v >= 5000) if open_ is None else open_
    return RiskView(ts, Decimal(equity), free_d, pos, count)
