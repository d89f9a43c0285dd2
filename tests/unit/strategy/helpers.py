"""One-line scenario set-up for strategy tests (freqtrade-style): a config from a few keyword
overrides, and a tiny market-order driver that feeds prices through the engine and a
Decimal toy ledger (instant fills at the trade price, Upbit fee), returning the trades."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from trader.domain import Intent, IntentKind, PositionView, Tick
from trader.strategy.config import StrategyConfig, parse_strategy
from trader.strategy.engine import StrategyEngine
from trader.strategy.sizing import to_decimal
from trader.upbit.rules import FEE_RATE, quantize_volume

MARKET = "KRW-BTC"
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a day start


def make_config(*, entry: dict | None = None, exits: dict | None = None, cooldown: dict | None = None,
                limit_orders: dict | None = None, order_krw: int | None = 100_000,
                order_fraction: float | None = None, market: str = MARKET) -> StrategyConfig:
    data: dict = {"market": market, "entry": entry or {"immediate": True}, "exits": exits or {}}
    if order_fraction is not None:
        data["order_fraction"] = order_fraction
    else:
        data["order_krw"] = order_krw
    if cooldown:
        data["cooldown"] = cooldown
    if limit_orders:
        data["limit_orders"] = limit_orders
    return parse_strategy(data)


@dataclass
class Book:
    """Market-order fills at the tick price; the ledger a scenario needs, in Decimal."""

    krw: Decimal = Decimal(1_000_000)
    volume: Decimal = Decimal(0)
    avg: Decimal = Decimal(0)
    trades: list[tuple[int, str, str, Decimal, Decimal]] = field(default_factory=list)

    def view(self, pending: bool = False) -> PositionView:
        return PositionView(MARKET, self.volume, self.avg, self.krw, pending)

    def execute(self, intent: Intent, price: float, ts: int) -> tuple[Decimal, Decimal]:
        px = Decimal(str(intent.limit_price)) if intent.limit_price is not None else to_decimal(price)
        if intent.kind is IntentKind.BUY:
            vol = quantize_volume(intent.krw / px)
            cost = vol * px
            self.krw -= cost * (1 + FEE_RATE)
            self.avg = (self.avg * self.volume + cost) / (self.volume + vol)
            self.volume += vol
        else:
            vol = min(intent.volume, self.volume)
            self.krw += vol * px * (1 - FEE_RATE)
            self.volume -= vol
            if not self.volume:
                self.avg = Decimal(0)
        self.trades.append((ts, intent.reason, intent.kind.value, vol, px))
        return vol, px


def run(engine: StrategyEngine, prices: list[float], *, book: Book | None = None, step_ms: int = 1000,
        t0: int = T0, fill: bool = True) -> tuple[Book, list[Intent]]:
    """Feed `prices` one second apart; market-fill every intent at once (unless fill=False)."""
    book = book or Book()
    intents: list[Intent] = []
    for i, p in enumerate(prices):
        ts = t0 + i * step_ms
        out = engine.on_tick(Tick(MARKET, ts, float(p), 1.0), book.view())
        assert len(out) <= 1
        for intent in out:
            intents.append(intent)
            if fill:
                vol, px = book.execute(intent, float(p), ts)
                engine.on_order_result(intent, vol, px, ts)
    return book, intents


def reasons(book: Book) -> list[str]:
    return [t[1] for t in book.trades]
