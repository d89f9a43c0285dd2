"""A synthetic 30-level order book around the last trade price.

Replayed candles carry no book, so one is made up deterministically: levels at consecutive ticks
(best ask = the last price rounded up to the tick grid, best bid one tick below), sizes drawn
from a generator seeded by (seed, market, price) and scaled to the recent trade volume. Takers
deplete levels; the book is rebuilt lazily, only when read after the price moved.
"""

from __future__ import annotations

import math
import zlib
from decimal import Decimal

from trader.upbit.rules import round_price, tick_size, tick_size_f

LEVELS = 30
_EPS = Decimal("0.00000001")
_Q8 = Decimal("0.00000001")


_M64 = (1 << 64) - 1


class _Draws:
    """A tiny deterministic generator (splitmix64) seeded by (seed, market, price).

    Much cheaper to seed than `random.Random` (the trade message needs a fresh one per price).
    """

    __slots__ = ("state",)

    def __init__(self, seed: int, market: str, price: float) -> None:
        self.state = (seed * 0x9E3779B97F4A7C15 + zlib.crc32(market.encode()) * 0xBF58476D1CE4E5B9
                      + int(price * 1e8)) & _M64

    def random(self) -> float:
        self.state = z = (self.state + 0x9E3779B97F4A7C15) & _M64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        return ((z ^ (z >> 31)) >> 11) / 9007199254740992.0


def _size_f(rng: _Draws, scale: float, level: int) -> float:
    return max(round(scale * (0.4 + 1.6 * rng.random()) * (1.0 + 0.05 * level), 8), 1e-8)


def _size(rng: _Draws, scale: float, level: int) -> Decimal:
    return Decimal(repr(_size_f(rng, scale, level))).quantize(_Q8)


def tick_up(price: Decimal) -> Decimal:
    return price + tick_size(price)


def tick_down(price: Decimal) -> Decimal:
    # the step below a band's lower edge uses the finer tick of the band below
    return price - tick_size(price - _EPS)


class SyntheticBook:
    """Levels as [price, size] lists (Decimal), best first on both sides."""

    __slots__ = ("_quotes", "asks", "bids", "built_for", "market", "seed")

    def __init__(self, market: str, seed: int) -> None:
        self.market = market
        self.seed = seed
        self.asks: list[list[Decimal]] = []
        self.bids: list[list[Decimal]] = []
        self.built_for: tuple[float, float] | None = None
        self._quotes: dict[float, tuple[float, float, float, float]] = {}

    def ensure(self, last_price: float | None, ref_volume: float) -> None:
        """Rebuild when the last price (or the volume scale, coarsely) changed since the last build."""
        if last_price is None:
            self.asks, self.bids, self.built_for = [], [], None
            return
        if self.built_for is not None and self.built_for[0] == last_price:
            return
        self.built_for = (last_price, ref_volume)
        last = Decimal(repr(last_price))
        rng = _Draws(self.seed, self.market, last_price)
        scale = max(ref_volume, 1e-6)
        best_ask = round_price(last, "up")
        if best_ask <= 0:
            best_ask = tick_size(last)
        asks: list[list[Decimal]] = []
        bids: list[list[Decimal]] = []
        pa, pb = best_ask, tick_down(best_ask)
        for i in range(LEVELS):
            # ask and bid sizes drawn alternately, so the best quote needs only the first two draws
            sa, sb = _size(rng, scale, i), _size(rng, scale, i)
            asks.append([pa, sa])
            if pb > 0:
                bids.append([pb, sb])
                pb = tick_down(pb)
            pa = tick_up(pa)
        self.asks, self.bids = asks, bids

    def quote(self, last_price: float, ref_volume: float) -> tuple[float, float, float, float]:
        """(best ask, ask size, best bid, bid size) as floats, cheaply (the trade message needs it).

        Same numbers as the full book would show for this price, unless takers depleted it.
        """
        bb = self.built_for
        if bb is not None and bb[0] == last_price and self.asks and self.bids:
            a, b = self.asks[0], self.bids[0]
            return float(a[0]), float(a[1]), float(b[0]), float(b[1])
        hit = self._quotes.get(last_price)
        if hit is None:
            # memo of the price-only part: best prices and the two unit draws of level 0
            if len(self._quotes) > 65536:
                self._quotes.clear()
            tick = tick_size_f(last_price)
            ask = round(math.ceil(last_price / tick - 1e-9) * tick, 8)
            bid = round(ask - tick_size_f(ask - 1e-8), 8)
            rng = _Draws(self.seed, self.market, last_price)
            hit = self._quotes[last_price] = (ask, rng.random(), bid, rng.random())
        scale = max(ref_volume, 1e-6)
        ask, ua, bid, ub = hit
        return (ask, max(round(scale * (0.4 + 1.6 * ua), 8), 1e-8),
                bid, max(round(scale * (0.4 + 1.6 * ub), 8), 1e-8))

    def consume(self, side_levels: list[list[Decimal]], index: int, volume: Decimal) -> None:
        side_levels[index][1] -= volume

    def best_ask(self) -> Decimal | None:
        for p, s in self.asks:
            if s > 0:
                return p
        return None

    def best_bid(self) -> Decimal | None:
        for p, s in self.bids:
            if s > 0:
                return p
        return None

    def units(self, count: int = LEVELS) -> list[dict]:
        """Quotation-API orderbook units (numbers as JSON numbers), best first."""
        out = []
        for i in range(min(count, max(len(self.asks), len(self.bids)))):
            a = self.asks[i] if i < len(self.asks) else None
            b = self.bids[i] if i < len(self.bids) else None
            out.append({
                "ask_price": float(a[0]) if a else 0.0,
                "bid_price": float(b[0]) if b else 0.0,
                "ask_size": float(max(a[1], Decimal(0))) if a else 0.0,
                "bid_size": float(max(b[1], Decimal(0))) if b else 0.0,
            })
        return out


# Upbit's whole set of orderbook grouping levels (호가 모아보기, KRW markets only)
ALL_LEVELS = tuple(Decimal(10) ** k for k in range(8, -8, -1))


def supported_levels(tick: Decimal) -> list[Decimal]:
    """The grouping levels offered at a tick size: 0 (no grouping) and the powers of ten from the
    tick to 100 ticks. Upbit documents only the whole set; the span follows a recorded answer of
    /v1/orderbook/instruments (KRW-DOGE, tick "1": supported_levels ["0","1","10","100"])."""
    return [Decimal(0), *sorted(lv for lv in ALL_LEVELS if tick <= lv <= tick * 100)]


def level_text(level: Decimal) -> str:
    """A level as /v1/orderbook/instruments spells it ("0", "10000", "0.1")."""
    return format(level.normalize(), "f") if level else "0"


def group_units(asks: list[list[Decimal]], bids: list[list[Decimal]], level: Decimal,
                count: int = LEVELS) -> list[dict]:
    """Orderbook units grouped into price buckets of `level`, as Upbit's `level` parameter does:
    an ask counts in the bucket at or above its price, a bid at or below; sizes are summed."""
    def buckets(levels: list[list[Decimal]], up: bool) -> list[tuple[Decimal, Decimal]]:
        out: dict[Decimal, Decimal] = {}
        for price, size in levels:
            if size <= 0:
                continue
            steps = price / level
            n = math.ceil(steps) if up else math.floor(steps)
            key = level * n
            out[key] = out.get(key, Decimal(0)) + size
        return sorted(out.items(), reverse=not up)

    ga, gb = buckets(asks, True), buckets(bids, False)
    units = []
    for i in range(min(count, max(len(ga), len(gb)))):
        a = ga[i] if i < len(ga) else None
        b = gb[i] if i < len(gb) else None
        units.append({
            "ask_price": float(a[0]) if a else 0.0,
            "bid_price": float(b[0]) if b else 0.0,
            "ask_size": float(a[1]) if a else 0.0,
            "bid_size": float(b[1]) if b else 0.0,
        })
    return units
