"""Replay feed and quotation state: trades in, ticker/candle/trade aggregates and WS messages out.

`MarketStats` keeps what the Quotation API shows, built only from the trades replayed so far
(1-second, 1-minute and 1-day buckets, a 24-hour rolling window, the trades of the last eight UTC
days with their sequential_ids for cursor/days_ago paging; weeks, months and years are summed
from the days). `Feed` walks the
synthesized trades of the recorded candles (`trader.marketdata.synth.synthesize_trades`) at
`speed` × real time, or as fast as WebSocket clients read (`speed=None`), and can be paused,
stepped and overridden by a pushed price path (the /_sim/ controls).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from operator import itemgetter

from trader.marketdata.synth import TradeArrays
from trader.sim.ackgate import AckGate, QuietBand
from trader.sim.matching import Exchange
from trader.sim.ws import SIMPLE_KEYS
from trader.timeutil import datetime_to_ms, ms_to_datetime

KST = timezone(timedelta(hours=9))
log = logging.getLogger("trader.sim.feed")
MIN_MS = 60_000
DAY_MS = 86_400_000
MINUTE_UNITS = (1, 3, 5, 10, 15, 30, 60, 240)
SEC_MS = 1000
_TS, _SID = itemgetter(0), itemgetter(4)  # keys into the trade history tuples
WEEK_MS = 7 * DAY_MS
TRADE_DAYS_KEPT = 8  # today + the 7 days `days_ago` reaches
HISTORY_MAX = 2_000_000  # hard cap on kept trades per market (memory bound for tick files)
SECONDS_KEPT_MS = 92 * DAY_MS  # Upbit serves second candles for the last 3 months only
PERIODS = ("weeks", "months", "years")
# WebSocket candle types (upbit-sdk WsCandleResponse) -> candle width in seconds
CANDLE_WS_SECONDS = {"candle.1s": 1, **{f"candle.{u}m": u * 60 for u in MINUTE_UNITS}}


def _utc(ts_ms: int) -> datetime:
    return ms_to_datetime(ts_ms)


_DAY_CACHE: dict[int, tuple[str, str]] = {}


def _date_strs(ts_ms: int) -> tuple[str, str]:
    """('yyyy-MM-dd', 'yyyyMMdd') of the UTC day, cached (strftime is slow on the hot path)."""
    day = ts_ms // DAY_MS
    hit = _DAY_CACHE.get(day)
    if hit is None:
        if len(_DAY_CACHE) > 4096:
            _DAY_CACHE.clear()
        d = _utc(day * DAY_MS)
        hit = _DAY_CACHE[day] = (d.strftime("%Y-%m-%d"), d.strftime("%Y%m%d"))
    return hit


_LAST_SEC: list = [-1, ("", "")]


def _time_strs(ts_ms: int) -> tuple[str, str]:
    """('HH:mm:ss', 'HHmmss') UTC (the last second is cached: trades cluster in time)."""
    sec = ts_ms // 1000
    if sec == _LAST_SEC[0]:
        return _LAST_SEC[1]
    h, rem = divmod(sec % 86400, 3600)
    m, s = divmod(rem, 60)
    out = (f"{h:02d}:{m:02d}:{s:02d}", f"{h:02d}{m:02d}{s:02d}")
    _LAST_SEC[0], _LAST_SEC[1] = sec, out
    return out


_TRADE_KEYS = ("type", "code", "timestamp", "trade_date", "trade_time", "trade_timestamp", "trade_price",
               "trade_volume", "ask_bid", "prev_closing_price", "change", "change_price", "sequential_id",
               "best_ask_price", "best_ask_size", "best_bid_price", "best_bid_size", "stream_type")
_TRADE_SIMPLE_KEYS = tuple(SIMPLE_KEYS["trade"][k] for k in _TRADE_KEYS)


def _naive(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S")


def period_start(kind: str, day_ms: int) -> int:
    """Start (UTC ms) of the week (Monday), month or year that contains the UTC day `day_ms`."""
    if kind == "weeks":
        weekday = (day_ms // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        return day_ms - weekday * DAY_MS
    d = _utc(day_ms)
    start = datetime(d.year, d.month if kind == "months" else 1, 1, tzinfo=UTC)
    return datetime_to_ms(start)


def parse_day_time(text: str) -> int:
    """`to` of /v1/trades/ticks: HHmmss or HH:mm:ss (UTC) -> ms since 00:00; ValueError if bad."""
    t = text.strip()
    if len(t) == 8 and t[2] == ":" and t[5] == ":":
        t = t[:2] + t[3:5] + t[6:]
    if len(t) != 6 or not t.isdigit():
        raise ValueError(text)
    h, m, sec = int(t[:2]), int(t[2:4]), int(t[4:])
    if h > 23 or m > 59 or sec > 59:
        raise ValueError(text)
    return ((h * 60 + m) * 60 + sec) * 1000


class MarketStats:
    """Quotation aggregates of one market, from the replayed trades only."""

    def __init__(self, market: str) -> None:
        self.market = market
        self.minutes: dict[int, list[float]] = {}  # start_ms -> [o, h, l, c, vol, value, last_ts]
        self.minute_keys: list[int] = []
        self.days: dict[int, list[float]] = {}
        self.day_keys: list[int] = []
        self.recent: deque[tuple[int, float, float, bool, int]] = deque(maxlen=5000)
        self._win: deque[tuple[int, float, float]] = deque()
        self.vol24 = 0.0
        self.val24 = 0.0
        self.seq = 0
        self.ask_vol = 0.0  # today's volume of ASK-initiated trades
        self.bid_vol = 0.0
        self.high52 = (0.0, 0)
        self.low52 = (float("inf"), 0)
        self.last: tuple[int, float, float, bool] | None = None
        # sequential_id of the last trade: the same value in REST and WS, strictly increasing
        self.last_sid = 0
        # trades of the last TRADE_DAYS_KEPT UTC days, oldest first (for /v1/trades/ticks paging)
        self._hist: list[tuple[int, float, float, bool, int]] = []  # ts, price, volume, is_bid, sid
        self._h_sorted = True
        # one-second buckets, oldest first: start ms, then o, h, l, c, volume, value, last ts
        self._s_key = array("q")
        self._s_cols = tuple(array("d") for _ in range(7))

    def _record(self, ts: int, price: float, vol: float, is_bid: bool, value: float) -> None:
        """Trade history and 1-second buckets (the additions behind cursor paging and candle.1s)."""
        # Upbit's ids look like ms*1000+n; keep that shape but never repeat or go backwards, even
        # when many trades share one millisecond (a client dedupes and orders by it)
        sid = ts * 1000 + self.seq % 1000
        if sid <= self.last_sid:
            sid = self.last_sid + 1
        self.last_sid = sid
        hist = self._hist
        if hist and ts < hist[-1][0]:
            self._h_sorted = False
        hist.append((ts, price, vol, is_bid, sid))
        if len(hist) > HISTORY_MAX:
            del hist[:len(hist) // 10]
        sk = ts - ts % SEC_MS
        keys = self._s_key
        last_key = keys[-1] if keys else -1
        o, hi, lo, c, v, x, last = self._s_cols
        if sk > last_key:  # the usual case: a new second (plain appends: this is the hot path)
            keys.append(sk)
            o.append(price)
            hi.append(price)
            lo.append(price)
            c.append(price)
            v.append(vol)
            x.append(value)
            last.append(ts)
        elif sk == last_key:
            if price > hi[-1]:
                hi[-1] = price
            if price < lo[-1]:
                lo[-1] = price
            c[-1] = price
            v[-1] += vol
            x[-1] += value
            last[-1] = ts
        else:  # an out-of-order trade (never from the feed, which clamps time): place it
            i = bisect_left(keys, sk)
            if i < len(keys) and keys[i] == sk:
                hi[i] = max(hi[i], price)
                lo[i] = min(lo[i], price)
                v[i] += vol
                x[i] += value
            else:
                keys.insert(i, sk)
                for col, val in zip(self._s_cols, (price, price, price, price, vol, value, ts), strict=True):
                    col.insert(i, val)

    def _prune(self, day_ms: int) -> None:
        """A new UTC day began: forget trades older than `days_ago` reaches, seconds > 3 months."""
        cutoff = day_ms - (TRADE_DAYS_KEPT - 1) * DAY_MS
        if self._h_sorted:
            n = bisect_left(self._hist, cutoff, key=_TS)
            if n:
                del self._hist[:n]
        s_cut = bisect_left(self._s_key, day_ms - SECONDS_KEPT_MS)
        if s_cut:
            del self._s_key[:s_cut]
            for col in self._s_cols:
                del col[:s_cut]

    def add(self, ts: int, price: float, vol: float, is_bid: bool) -> None:
        self.seq += 1
        value = price * vol
        _update_bar(self.minutes, self.minute_keys, ts - ts % MIN_MS, price, vol, value, ts)
        dk = ts - ts % DAY_MS
        if _update_bar(self.days, self.day_keys, dk, price, vol, value, ts):
            self.ask_vol = self.bid_vol = 0.0
            self._prune(dk)
        if is_bid:
            self.bid_vol += vol
        else:
            self.ask_vol += vol
        self._win.append((ts, vol, value))
        self.vol24 += vol
        self.val24 += value
        cutoff = ts - DAY_MS
        while self._win and self._win[0][0] <= cutoff:
            _, v, x = self._win.popleft()
            self.vol24 -= v
            self.val24 -= x
        if price > self.high52[0]:
            self.high52 = (price, ts)
        if price < self.low52[0]:
            self.low52 = (price, ts)
        self.recent.append((ts, price, vol, is_bid, self.seq))
        self.last = (ts, price, vol, is_bid)
        self._record(ts, price, vol, is_bid, value)

    # -------------------------------------------------------------- day figures
    def _day_figures(self) -> tuple[list[float], float]:
        dk = self.day_keys[-1]
        day = self.days[dk]
        prev = self.days[self.day_keys[-2]][3] if len(self.day_keys) > 1 else day[0]
        return day, prev

    @staticmethod
    def _change(price: float, prev: float) -> tuple[str, float, float]:
        diff = price - prev
        rate = diff / prev if prev else 0.0
        return ("RISE" if diff > 0 else "FALL" if diff < 0 else "EVEN"), diff, rate

    def ticker_rest(self) -> dict | None:
        if self.last is None:
            return None
        ts, price, vol, _ = self.last
        day, prev = self._day_figures()
        change, diff, rate = self._change(price, prev)
        dt = _utc(ts)
        kst = dt.astimezone(KST)
        return {
            "market": self.market,
            "trade_date": dt.strftime("%Y%m%d"), "trade_time": dt.strftime("%H%M%S"),
            "trade_date_kst": kst.strftime("%Y%m%d"), "trade_time_kst": kst.strftime("%H%M%S"),
            "trade_timestamp": ts,
            "opening_price": day[0], "high_price": day[1], "low_price": day[2], "trade_price": price,
            "prev_closing_price": prev, "change": change, "change_price": abs(diff),
            "change_rate": abs(rate), "signed_change_price": diff, "signed_change_rate": rate,
            "trade_volume": vol, "acc_trade_price": round(day[5], 8),
            "acc_trade_price_24h": round(self.val24, 8),
            "acc_trade_volume": round(day[4], 8), "acc_trade_volume_24h": round(self.vol24, 8),
            "highest_52_week_price": self.high52[0],
            "highest_52_week_date": _utc(self.high52[1]).strftime("%Y-%m-%d"),
            "lowest_52_week_price": self.low52[0],
            "lowest_52_week_date": _utc(self.low52[1]).strftime("%Y-%m-%d"),
            "timestamp": ts,
        }

    def ticker_ws(self, stream_type: str = "REALTIME") -> dict | None:
        if self.last is None:
            return None
        ts, price, vol, is_bid = self.last
        day, prev = self._day_figures()
        change, diff, rate = self._change(price, prev)
        return {
            "type": "ticker", "code": self.market, "opening_price": day[0], "high_price": day[1],
            "low_price": day[2], "trade_price": price, "prev_closing_price": prev, "change": change,
            "change_price": abs(diff), "signed_change_price": diff, "change_rate": abs(rate),
            "signed_change_rate": rate, "trade_volume": vol, "acc_trade_volume": round(day[4], 8),
            "acc_trade_volume_24h": round(self.vol24, 8), "acc_trade_price": round(day[5], 8),
            "acc_trade_price_24h": round(self.val24, 8), "trade_date": _date_strs(ts)[1],
            "trade_time": _time_strs(ts)[1], "trade_timestamp": ts,
            "ask_bid": "BID" if is_bid else "ASK", "acc_ask_volume": round(self.ask_vol, 8),
            "acc_bid_volume": round(self.bid_vol, 8),
            "highest_52_week_price": self.high52[0], "highest_52_week_date": _date_strs(self.high52[1])[0],
            "lowest_52_week_price": self.low52[0], "lowest_52_week_date": _date_strs(self.low52[1])[0],
            "trade_status": None, "market_state": "ACTIVE", "market_state_for_ios": None,
            "is_trading_suspended": False, "delisting_date": None, "market_warning": "NONE",
            "timestamp": ts, "stream_type": stream_type,
        }

    def trade_ws(self, best: tuple[float, float, float, float], stream_type: str = "REALTIME",
                 *, simple: bool = False) -> dict | None:
        """The trade message, in DEFAULT or (built directly, the hot path) SIMPLE field names."""
        if self.last is None:
            return None
        ts, price, vol, is_bid = self.last
        prev = self._day_figures()[1]
        change, diff, _ = self._change(price, prev)
        values = ("trade", self.market, ts, _date_strs(ts)[0], _time_strs(ts)[0], ts, price, vol,
                  "BID" if is_bid else "ASK", prev, change, abs(diff), self.last_sid,
                  best[0], best[1], best[2], best[3], stream_type)
        return dict(zip(_TRADE_SIMPLE_KEYS if simple else _TRADE_KEYS, values, strict=True))

    def trades_rest(self, count: int, to_ms: int | None = None, *, cursor: int | None = None,
                    since_ms: int | None = None) -> list[dict]:
        """/v1/trades/ticks rows, newest first: trades before `to_ms` (exclusive), at or after
        `since_ms`, and older than the trade whose sequential_id is `cursor` (exclusive)."""
        hist = self._hist
        hi = len(hist)
        if cursor is not None:  # ids strictly increase in history order
            hi = bisect_left(hist, cursor, key=_SID)
        lo = 0
        if self._h_sorted:
            if to_ms is not None:
                hi = min(hi, bisect_left(hist, to_ms, key=_TS))
            if since_ms is not None:
                lo = bisect_left(hist, since_ms, key=_TS)
            picked = range(hi - 1, max(lo, hi - count) - 1, -1)
        else:
            picked = [i for i in range(hi - 1, -1, -1)
                      if (to_ms is None or hist[i][0] < to_ms)
                      and (since_ms is None or hist[i][0] >= since_ms)][:count]
        out = []
        prev_cache: dict[int, float] = {}
        for i in picked:
            ts, price, vol, is_bid, sid = hist[i]
            dk = ts - ts % DAY_MS
            prev = prev_cache.get(dk)
            if prev is None:
                prev = prev_cache[dk] = self._prev_close(dk)
            dt = _utc(ts)
            out.append({"market": self.market, "trade_date_utc": dt.strftime("%Y-%m-%d"),
                        "trade_time_utc": dt.strftime("%H:%M:%S"), "timestamp": ts, "trade_price": price,
                        "trade_volume": vol, "prev_closing_price": prev,
                        "change_price": price - prev, "ask_bid": "BID" if is_bid else "ASK",
                        "sequential_id": sid})
        return out

    def _prev_close(self, day_ms: int) -> float:
        """Close of the day before `day_ms` that had trades (its own open on the first day)."""
        keys = self.day_keys
        i = bisect_left(keys, day_ms)
        if i > 0:
            return self.days[keys[i - 1]][3]
        d = self.days.get(day_ms)
        return d[0] if d else 0.0

    def today_ms(self) -> int | None:
        """Start of the UTC day of the newest trade (the simulator's 'today')."""
        return self.day_keys[-1] if self.day_keys else None

    # -------------------------------------------------------------- candles
    def candles_minutes(self, unit: int, to_ms: int, count: int) -> list[dict]:
        """Newest first, candles starting before `to_ms` (exclusive); no trades, no candle."""
        span = unit * MIN_MS
        out: list[dict] = []
        cur: list[float] | None = None
        cur_start = -1
        for mk in reversed(self.minute_keys):
            start = mk - mk % span
            if start >= to_ms:
                continue
            m = self.minutes[mk]
            if start != cur_start:
                if cur is not None:
                    out.append(self._candle(cur_start, cur, unit))
                    if len(out) >= count:
                        return out
                cur_start = start
                cur = list(m)
            else:  # walking backwards: this minute is older
                assert cur is not None
                _fold_older(cur, m)
        if cur is not None and len(out) < count:
            out.append(self._candle(cur_start, cur, unit))
        return out

    def _candle(self, start: int, c: list[float], unit: int | None) -> dict:
        dt = _utc(start)
        row = {"market": self.market, "candle_date_time_utc": _naive(dt),
               "candle_date_time_kst": _naive(dt.astimezone(KST)), "opening_price": c[0], "high_price": c[1],
               "low_price": c[2], "trade_price": c[3], "timestamp": int(c[6]),
               "candle_acc_trade_price": round(c[5], 8),
               "candle_acc_trade_volume": round(c[4], 8)}
        if unit is not None:
            row["unit"] = unit
        return row

    def candles_days(self, to_ms: int, count: int) -> list[dict]:
        out = []
        keys = self.day_keys
        for i in range(len(keys) - 1, -1, -1):
            dk = keys[i]
            if dk >= to_ms:
                continue
            d = self.days[dk]
            row = self._candle(dk, d, None)
            prev = self.days[keys[i - 1]][3] if i > 0 else d[0]
            row["prev_closing_price"] = prev
            row["change_price"] = d[3] - prev
            row["change_rate"] = (d[3] - prev) / prev if prev else 0.0
            out.append(row)
            if len(out) >= count:
                break
        return out


    def candles_seconds(self, to_ms: int, count: int, *, since_ms: int | None = None) -> list[dict]:
        """1-second candles starting before `to_ms`, newest first (kept for 3 months)."""
        keys = self._s_key
        hi = bisect_left(keys, to_ms)
        lo = bisect_left(keys, since_ms) if since_ms is not None else 0
        cols = self._s_cols
        return [self._candle(keys[i], [col[i] for col in cols], None)
                for i in range(hi - 1, max(lo, hi - count) - 1, -1)]

    def candles_period(self, kind: str, to_ms: int, count: int) -> list[dict]:
        """Week (from Monday 00:00 UTC), month or year candles from the day buckets, newest first,
        with `first_day_of_period`; candles starting at or after `to_ms` are left out."""
        out: list[dict] = []
        cur: list[float] | None = None
        cur_start = -1
        for dk in reversed(self.day_keys):
            start = period_start(kind, dk)
            if start >= to_ms:
                continue
            d = self.days[dk]
            if start != cur_start:
                if cur is not None:
                    out.append(self._period_row(cur_start, cur))
                    if len(out) >= count:
                        return out
                cur_start, cur = start, list(d)
            else:  # walking backwards: this day is older
                assert cur is not None
                _fold_older(cur, d)
        if cur is not None and len(out) < count:
            out.append(self._period_row(cur_start, cur))
        return out

    def _period_row(self, start: int, c: list[float]) -> dict:
        row = self._candle(start, c, None)
        row["first_day_of_period"] = _date_strs(start)[0]
        return row

    def candle_ws(self, typ: str, stream_type: str = "REALTIME") -> dict | None:
        """The newest `candle.1s` / `candle.Nm` candle as a WebSocket message (DEFAULT names)."""
        width = CANDLE_WS_SECONDS.get(typ)
        if width is None or self.last is None:
            return None
        if width == 1:
            if not self._s_key:
                return None
            row = self._candle(self._s_key[-1], [col[-1] for col in self._s_cols], None)
        else:
            rows = self.candles_minutes(width // 60, 1 << 62, 1)
            if not rows:
                return None
            row = rows[0]
        return {"type": typ, "code": self.market, "candle_date_time_utc": row["candle_date_time_utc"],
                "candle_date_time_kst": row["candle_date_time_kst"], "opening_price": row["opening_price"],
                "high_price": row["high_price"], "low_price": row["low_price"],
                "trade_price": row["trade_price"], "candle_acc_trade_volume": row["candle_acc_trade_volume"],
                "candle_acc_trade_price": row["candle_acc_trade_price"], "timestamp": row["timestamp"],
                "stream_type": stream_type}


@dataclass(slots=True)
class PendingTrade:
    market: str
    ts_ms: int | None
    price: float
    volume: float | None
    is_bid: bool | None


class Feed:
    """Drives the exchange and the quotation state from the replay (or a pushed path)."""

    def __init__(self, exchange: Exchange, market: str, trades: TradeArrays | None, *,
                 speed: float | None = 1.0, paused: bool = False,
                 publish: Callable[[str, MarketStats], None] | None = None) -> None:
        self.exchange = exchange
        self.market = market
        self.trades = trades
        # plain lists: indexing numpy arrays element by element is several times slower
        self._cols = ((trades.ts_ms.tolist(), trades.price.tolist(), trades.volume.tolist(),
                       trades.is_bid.tolist()) if trades is not None else ([], [], [], []))
        self.pos = 0
        self.speed = speed
        self.paused = paused
        self.stats: dict[str, MarketStats] = {market: MarketStats(market)}
        self.pending: deque[PendingTrade] = deque()
        self.publish = publish
        self.applied = 0
        self.fills = 0
        self._resume = asyncio.Event()
        self._wake = asyncio.Event()
        self._anchor: tuple[float, int] | None = None
        self.backpressure: Callable[[], asyncio.Future | None] | None = None
        self.finished = False
        self.last_vol = 1.0
        # lockstep (opt-in): a trade the client's quiet band does not cover waits for its ack, so
        # the client's orders meet the exchange as of that trade (the backtest's semantics); the
        # trades it covers go by without one (trader/sim/ackgate.py)
        self.lockstep = False
        self.gate = AckGate()

    def stats_for(self, market: str) -> MarketStats | None:
        return self.stats.get(market)

    def skip_to(self, ts_ms: int) -> None:
        if self.trades is not None:
            import numpy as np
            self.pos = int(np.searchsorted(self.trades.ts_ms, ts_ms, side="left"))

    # -------------------------------------------------------------- applying trades
    def apply(self, market: str, ts: int, price: float, vol: float, is_bid: bool) -> None:
        """One trade: match resting orders, update quotation state, publish WS messages."""
        fills = self.exchange.on_trade(market, ts, price, vol, is_bid)
        self.fills += len(fills)
        st = self.stats.get(market)
        if st is None:
            st = self.stats[market] = MarketStats(market)
        st.add(ts, price, vol, is_bid)
        if market == self.market:
            self.gate.published = st.last_sid  # lockstep waits for the ack of the newest trade
        self.applied += 1
        self.last_vol = vol
        if self.publish is not None:
            self.publish(market, st)

    def _next(self) -> tuple[str, int, float, float, bool] | None:
        if self.pending:
            p = self.pending.popleft()
            clock = self.exchange.clock_ms
            ts = p.ts_ms if p.ts_ms is not None else clock + 1000
            ts = max(ts, clock)
            last = self.exchange.last_price(p.market)
            is_bid = p.is_bid if p.is_bid is not None else (last is None or p.price >= last)
            return p.market, ts, p.price, p.volume if p.volume is not None else self.last_vol, is_bid
        ts_col, px, vol, bid = self._cols
        i = self.pos
        if i >= len(ts_col):
            return None
        self.pos = i + 1
        ts = ts_col[i]
        clock = self.exchange.clock_ms
        return self.market, ts if ts > clock else clock, px[i], vol[i], bid[i]

    def peek_ts(self) -> int | None:
        if self.pending:
            return self.pending[0].ts_ms or self.exchange.clock_ms + 1000
        ts_col = self._cols[0]
        return ts_col[self.pos] if self.pos < len(ts_col) else None

    def step(self, n: int = 1) -> int:
        """Apply the next `n` trades now (pushed path first, then the replay); returns how many."""
        done = 0
        for _ in range(max(0, n)):
            nxt = self._next()
            if nxt is None:
                break
            self.apply(*nxt)
            done += 1
        self._anchor = None
        return done

    def push_path(self, prices: list[float], volumes: list[float] | None = None,
                  timestamps: list[int] | None = None, market: str | None = None, apply_now: bool = False,
                  interval_ms: int = 1000) -> int:
        """Queue (or apply at once) a forced price path; timestamps default to 1 s apart."""
        mk = market or self.market
        clock = self.exchange.clock_ms
        items = []
        for i, price in enumerate(prices):
            ts = int(timestamps[i]) if timestamps else clock + interval_ms * (i + 1)
            vol = float(volumes[i]) if volumes else None
            items.append(PendingTrade(mk, ts, float(price), vol, None))
        if apply_now:
            for it in items:
                self.pending.appendleft(it)
                self.step(1)
            return len(items)
        self.pending.extend(items)
        self._wake.set()
        return len(items)

    # -------------------------------------------------------------- lockstep
    @property
    def ack_timeout_s(self) -> float:
        return self.gate.timeout_s

    @ack_timeout_s.setter
    def ack_timeout_s(self, value: float) -> None:
        self.gate.timeout_s = value

    @property
    def acks(self) -> int:
        return self.gate.acks

    @property
    def ack_timeouts(self) -> int:
        return self.gate.timeouts

    def ack(self, seq: int | None = None, band: QuietBand | None = None) -> bool:
        """The lockstep client is done with the trade `seq` (sequential_id; None = the newest),
        and the following trades inside `band` need no ack. An ack of an older trade is stale:
        it releases nothing (returns False) and its band is ignored."""
        return self.gate.ack(seq, band)

    def _next_may_pass(self) -> bool:
        """Lockstep: whether the next trade may go without an ack (a pushed trade never may)."""
        if self.pending:
            return False
        ts_col, px = self._cols[0], self._cols[1]
        i = self.pos
        ts = ts_col[i]
        clock = self.exchange.clock_ms
        return self.gate.may_pass(ts if ts > clock else clock, px[i], self.exchange.resting_band(self.market))

    # -------------------------------------------------------------- running
    def pause(self) -> None:
        self.paused = True
        self._resume.clear()

    def resume(self) -> None:
        self.paused = False
        self._anchor = None
        self._resume.set()
        self._wake.set()

    def state(self) -> dict:
        tr = self.trades
        finished = self.pos >= (len(tr) if tr is not None else 0) and not self.pending
        return {"paused": self.paused, "speed": "max" if self.speed is None else self.speed,
                "clock_ms": self.exchange.clock_ms,
                "clock": _utc(self.exchange.clock_ms).isoformat() if self.exchange.clock_ms else None,
                "position": self.pos, "total": len(tr) if tr is not None else 0,
                "pending": len(self.pending), "applied": self.applied, "fills": self.fills,
                "finished": finished,
                "market": self.market, "last_price": self.exchange.last_price(self.market),
                # the replay is over and (lockstep) its last trade acked: a paper run may stop
                "ended": finished and (not self.lockstep or self.gate.caught_up()),
                **({"lockstep": self.gate.state()} if self.lockstep else {})}

    async def run(self) -> None:
        """The replay loop: paced by the market clock, or by the readers at speed max."""
        n = 0
        while True:
            if self.paused:
                await self._resume.wait()
                continue
            ts = self.peek_ts()
            if ts is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.speed is not None:
                now = time.monotonic()
                if self._anchor is None:
                    self._anchor = (now, max(ts, self.exchange.clock_ms))
                wall0, clock0 = self._anchor
                delay = wall0 + (ts - clock0) / 1000.0 / self.speed - now
                if delay > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=min(delay, 1.0))
                    continue
            gate = self.gate
            quiet = False
            if self.lockstep:
                quiet = self._next_may_pass()
                if not quiet:
                    if not gate.caught_up():
                        await gate.wait()  # the client handles every earlier trade first
                        continue  # ask again with its newest band
                    gate.spend()  # published, then its own ack is awaited
            nxt = self._next()
            if nxt is None:
                continue
            fills = self.fills
            self.apply(*nxt)
            n += 1
            if quiet:
                gate.passed += 1
                if self.fills != fills:  # cannot happen strictly inside the resting band
                    log.warning("lockstep: a trade inside the resting band filled orders")
                    gate.spend()
            elif self.lockstep:
                continue
            if self.speed is None and self.backpressure is not None:
                # speed max: go only as fast as the slowest reader drains its queue
                fut = self.backpressure()
                if fut is not None:
                    await fut
                    continue
            if n % 64 == 0:
                await asyncio.sleep(0)


def _fold_older(acc: list[float], older: list[float]) -> None:
    """Merge an earlier bar into `acc` (a wider candle built walking backwards): its open, the
    extremes of both, the sums of volume and value; `acc` keeps its close and last trade time."""
    acc[0] = older[0]
    acc[1] = max(acc[1], older[1])
    acc[2] = min(acc[2], older[2])
    acc[4] += older[4]
    acc[5] += older[5]


def _update_bar(
    bars: dict[int, list[float]], keys: list[int], key: int, price: float, vol: float, value: float, ts: int
) -> bool:
    """Fold one trade into the OHLCV bar starting at `key` ([o, h, l, c, vol, value, last_ts]);
    True when it opened a new bar. `keys` stays the sorted list of bar starts."""
    bar = bars.get(key)
    if bar is None:
        bars[key] = [price, price, price, price, vol, value, ts]
        if not keys or key > keys[-1]:
            keys.append(key)
        else:
            keys[:] = sorted(bars)
        return True
    if price > bar[1]:
        bar[1] = price
    if price < bar[2]:
        bar[2] = price
    bar[3] = price
    bar[4] += vol
    bar[5] += value
    bar[6] = ts
    return False
