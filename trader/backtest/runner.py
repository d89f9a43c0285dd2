"""The backtest loop: replayed trades → the live StrategyEngine → the in-process exchange →
the ledger, in market time, with no sockets.

Candles become trades through `synthesize_trades` (the simulator's feed uses the same); orders go
to `trader.sim.matching.Exchange` (the simulator's matching and fee rules) and fills to
`trader.portfolio.Portfolio`. Limit orders honour the intent's `timeout_s`/`on_timeout` in
market time: `market` sends the unfilled rest at market, `reprice` re-posts it at the current
price, `cancel` keeps what filled.

Speed: the engine runs per trade exactly as live, but runs of trades that provably cannot
trigger a rule nor fill a resting order are skipped in bulk: the band is the intersection of
`StrategyEngine.quiet` and `Exchange.resting_band`, the next trade outside it is found with
numpy, and the skipped trades are replayed into the engine (`advance`) and the exchange (its
last price, clock and volume average) exactly. `skip=False` runs every trade through
`on_tick`; both give bit-identical fills (a test compares sha256 fingerprints).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

import numpy as np

from trader.domain import Fill, Intent, IntentKind, PositionView
from trader.marketdata.synth import TradeArrays
from trader.portfolio import Portfolio
from trader.sim.matching import Exchange, SimError
from trader.strategy import sizing
from trader.strategy.config import StrategyConfig
from trader.strategy.engine import StrategyEngine
from trader.upbit.rules import MIN_ORDER_KRW

TICKS_PER_CANDLE = 8  # the simulator's default; the backtest must see the same trades
MIN_SKIP = 24  # shorter quiet runs are cheaper to feed tick by tick than in bulk
_ZERO = Decimal(0)
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class FillRecord:
    """One fill as the backtest reports it (money in Decimal)."""

    ts_ms: int
    side: str
    price: Decimal
    volume: Decimal
    funds: Decimal
    fee: Decimal
    reason: str
    intent_id: str
    krw_after: Decimal
    volume_after: Decimal


@dataclass(frozen=True, slots=True)
class _OrderState:
    state: str
    executed_volume: Decimal
    executed_funds: Decimal


@dataclass
class _Pending:
    """A limit intent in flight: its current order and what all its orders filled so far."""

    intent: Intent
    uuid: str
    deadline_ms: int
    attempt: int = 0
    filled: Decimal = _ZERO
    funds: Decimal = _ZERO


@dataclass
class RunOutput:
    """Raw outcome of a run; `trader.backtest.report` turns it into the summary."""

    market: str
    krw_start: Decimal
    fills: list[FillRecord]
    ticks: int
    processed: int
    rejected: list[str] = field(default_factory=list)
    final_krw: Decimal = _ZERO
    final_volume: Decimal = _ZERO
    engine_state: dict = field(default_factory=dict)
    wall_s: float = 0.0


def _replay_exchange(ex: Exchange, market: str, last_ts: int, vol: list[float], price: float) -> None:
    """Make the exchange look as if it saw these quiet trades one by one (no order can cross)."""
    ex.replay_quiet_trades(market, last_ts, vol, price)


class Backtest:
    """One run over one market. Call `run()` once."""

    def __init__(self, config: StrategyConfig, trades: TradeArrays, *, krw: Decimal = Decimal(10_000_000),
                 seed: int = 0, skip: bool = True,
                 progress: ProgressFn | None = None) -> None:
        self.config = config
        self.market = config.market
        self.trades = trades
        self.krw = Decimal(krw)
        self.skip = skip
        self.progress = progress
        self.exchange = Exchange(krw=self.krw, markets=[self.market], seed=seed)
        self.portfolio = Portfolio(self.krw)
        self.engine = StrategyEngine(config)
        self.fills: list[FillRecord] = []
        self.rejected: list[str] = []
        self.pending: _Pending | None = None
        self._view: PositionView | None = None

    # ------------------------------------------------------------------ ledger plumbing
    def view(self) -> PositionView:
        if self._view is None:
            self._view = self.portfolio.view(self.market, pending=self._blocking())
        return self._view

    def _blocking(self) -> bool:
        """Whether the order in flight keeps the strategy from deciding — as in the live loop:
        an entry does, a resting sell (a take-profit limit) does not, so a stop can still fire
        while it rests (`_supersede` then cancels it first, as the order manager does)."""
        pend = self.pending
        return pend is not None and pend.intent.kind is IntentKind.BUY

    def _apply(self, fills: list[Fill], reason: str, intent_id: str) -> None:
        pf = self.portfolio
        for f in fills:
            if pf.apply_fill(f) is None:
                continue
            self.fills.append(FillRecord(f.ts_ms, f.side.value, f.price, f.volume, f.funds, f.fee, reason,
                                         intent_id, pf.krw, pf.position(self.market).volume))
        self._view = None

    # ------------------------------------------------------------------ orders
    def _send(self, intent: Intent, ts: int, *, market_order: bool, krw: Decimal | None,
              volume: Decimal | None, limit_price: Decimal | None, tag: str) -> tuple[str, str] | None:
        """Place one order; returns (uuid, state) or None when the exchange rejected it."""
        ex = self.exchange
        ident = intent.identifier(tag)
        try:
            if intent.kind is IntentKind.BUY:
                if market_order:
                    res = ex.create_order(self.market, "bid", "price", price=krw, identifier=ident, ts_ms=ts)
                else:
                    res = ex.create_order(self.market, "bid", "limit", price=limit_price, volume=volume,
                                          identifier=ident, ts_ms=ts)
            elif market_order:
                res = ex.create_order(self.market, "ask", "market", volume=volume, identifier=ident, ts_ms=ts)
            else:
                res = ex.create_order(self.market, "ask", "limit", price=limit_price, volume=volume,
                                      identifier=ident, ts_ms=ts)
        except SimError as exc:
            self.rejected.append(f"{ts} {intent.intent_id}: {exc.name}")
            return None
        uuid = res["uuid"]
        self._apply(ex.order_fills(uuid), intent.reason, intent.intent_id)
        return uuid, self._order(uuid).state

    def _order(self, uuid: str) -> _OrderState:
        o = self.exchange.get_order(uuid=uuid)
        return _OrderState(o["state"], Decimal(o["executed_volume"]), Decimal(o["executed_funds"]))

    def _finish(self, intent: Intent, filled: Decimal, funds: Decimal, ts: int) -> None:
        self.pending = None
        self._view = None
        avg = funds / filled if filled else None
        self.engine.on_order_result(intent, filled, avg, ts)

    def submit(self, intent: Intent, ts: int, price: float) -> None:
        use_limit = intent.limit_price is not None
        sent = self._send(intent, ts, market_order=not use_limit, krw=intent.krw, volume=intent.volume,
                          limit_price=intent.limit_price, tag="0")
        if sent is None:
            self._finish(intent, _ZERO, _ZERO, ts)
            return
        uuid, state = sent
        order = self._order(uuid)
        if state in ("done", "cancel"):
            self._finish(intent, order.executed_volume, order.executed_funds, ts)
            return
        deadline = ts + int((intent.timeout_s or 0) * 1000)
        self.pending = _Pending(intent, uuid, deadline)
        self._view = None

    def _supersede(self, ts: int) -> None:
        """A new decision while a sell rests: cancel it (no timeout fallback) and report what it
        filled, before the new order goes out — the live order manager's `superseded` path."""
        pend = self.pending
        assert pend is not None
        with contextlib.suppress(SimError):  # it may have filled in the meantime
            self.exchange.cancel_order(uuid=pend.uuid, ts_ms=ts)
        order = self._order(pend.uuid)
        self._finish(pend.intent, pend.filled + order.executed_volume, pend.funds + order.executed_funds, ts)

    def _settle_pending(self, ts: int) -> None:
        """The pending order got fills from a trade: finish the intent if the order is done."""
        pend = self.pending
        assert pend is not None
        order = self._order(pend.uuid)
        if order.state == "done":
            self._finish(pend.intent, pend.filled + order.executed_volume,
                         pend.funds + order.executed_funds, ts)

    def _timeout(self, ts: int, price: float) -> None:
        """The limit order outlived `timeout_s` (market time): cancel, then fall back."""
        pend = self.pending
        assert pend is not None
        intent = pend.intent
        ex = self.exchange
        with contextlib.suppress(SimError):  # it may have filled in the meantime
            ex.cancel_order(uuid=pend.uuid, ts_ms=ts)
        order = self._order(pend.uuid)
        pend.filled += order.executed_volume
        pend.funds += order.executed_funds
        pend.attempt += 1
        if intent.kind is IntentKind.BUY:
            assert intent.krw is not None
            rest_krw = (intent.krw - pend.funds).quantize(Decimal(1), rounding=ROUND_DOWN)
            rest_vol = None
            enough = rest_krw >= MIN_ORDER_KRW
        else:
            assert intent.volume is not None
            rest_vol = intent.volume - pend.filled
            rest_krw = None
            held = self.portfolio.position(self.market).volume
            rest_vol = min(rest_vol, held)
            enough = rest_vol > 0 and not sizing.below_minimum(rest_vol, sizing.to_decimal(price))
        mode = intent.on_timeout
        if mode == "cancel" or not enough or order.state == "done":
            self._finish(intent, pend.filled, pend.funds, ts)
            return
        tag = str(pend.attempt)
        if mode == "market":
            sent = self._send(intent, ts, market_order=True, krw=rest_krw, volume=rest_vol, limit_price=None,
                              tag=tag)
            if sent is not None:
                o = self._order(sent[0])
                pend.filled += o.executed_volume
                pend.funds += o.executed_funds
            self._finish(intent, pend.filled, pend.funds, ts)
            return
        # reprice: the rest again as a limit at the current price, with a fresh timeout
        lim = self.config.limit_orders
        if intent.kind is IntentKind.BUY:
            lp = sizing.bid_price(price, lim.offset_ticks)
            vol = sizing.bid_volume(rest_krw, lp)
        else:
            lp = sizing.ask_price(price, lim.offset_ticks)
            vol = rest_vol
        sent = self._send(intent, ts, market_order=False, krw=None, volume=vol, limit_price=lp, tag=tag)
        if sent is None:
            self._finish(intent, pend.filled, pend.funds, ts)
            return
        uuid, state = sent
        if state in ("done", "cancel"):
            o = self._order(uuid)
            self._finish(intent, pend.filled + o.executed_volume, pend.funds + o.executed_funds, ts)
            return
        pend.uuid = uuid
        pend.deadline_ms = ts + int((intent.timeout_s or 0) * 1000)

    # ------------------------------------------------------------------ the loop
    def run(self) -> RunOutput:
        started = time.perf_counter()
        market = self.market
        tr = self.trades
        n = len(tr)
        ts_a, px_a, vol_a, bid_a = tr.ts_ms, tr.price, tr.volume, tr.is_bid
        skip = self.skip
        # Python lists make per-trade access cheap, but cost ~130 bytes a trade; when skipping,
        # only a few percent of trades are read one by one, so read those from the arrays
        ts_l: list[int] = [] if skip else ts_a.tolist()
        px_l: list[float] = [] if skip else px_a.tolist()
        vol_l: list[float] = [] if skip else vol_a.tolist()
        bid_l: list[bool] = [] if skip else bid_a.tolist()
        eng, ex = self.engine, self.exchange
        on_trade, on_price = ex.on_trade, eng.on_price
        progress = self.progress
        next_progress = 0
        processed = 0
        inf = float("inf")
        i = 0
        # after a failed skip attempt, don't retry until the band can have changed
        no_skip_until = 0
        while i < n:
            if progress is not None and i >= next_progress:
                progress(i, n)
                next_progress = i + 200_000
            if skip and i >= no_skip_until:
                view = self._view or self.view()
                lo, hi, until = eng.quiet(view)
                pend = self.pending
                if pend is not None:
                    rb_lo, rb_hi = ex.resting_band(market)
                    lo = max(lo, rb_lo)
                    hi = min(hi, rb_hi)
                    until = min(until, pend.deadline_ms)
                if lo < px_a[i] < hi and ts_a[i] < until:
                    j = self._scan(ts_a, px_a, i, lo, hi, until, inf)
                    if j - i >= MIN_SKIP:
                        eng.advance(ts_a[i:j], px_a[i:j])
                        _replay_exchange(ex, market, int(ts_a[j - 1]), vol_a[i:j].tolist(),
                                         float(px_a[j - 1]))
                        i = j
                        continue
                    no_skip_until = j  # those trades are processed one by one below
            if skip:
                t, p, v, b = int(ts_a[i]), float(px_a[i]), float(vol_a[i]), bool(bid_a[i])
            else:
                t, p, v, b = ts_l[i], px_l[i], vol_l[i], bid_l[i]
            processed += 1
            fills = on_trade(market, t, p, v, b)
            pend = self.pending
            if fills:
                if pend is not None:
                    self._apply(fills, pend.intent.reason, pend.intent.intent_id)
                    self._settle_pending(t)
                else:  # cannot happen: only the backtest places orders
                    self._apply(fills, "", "")
                pend = self.pending
            if pend is not None and t >= pend.deadline_ms:
                self._timeout(t, p)
            intents = on_price(t, p, self._view or self.view())
            if intents:
                for intent in intents:
                    pend = self.pending
                    if pend is not None:
                        if intent.intent_id == pend.intent.intent_id:
                            continue  # re-emitted while its limit order rests: already in hand
                        self._supersede(t)
                    self.submit(intent, t, p)
                no_skip_until = 0
            elif fills:
                no_skip_until = 0
            i += 1
        if progress is not None:
            progress(n, n)
        pos = self.portfolio.position(market)
        return RunOutput(market=market, krw_start=self.krw, fills=self.fills, ticks=n, processed=processed,
                         rejected=self.rejected, final_krw=self.portfolio.krw, final_volume=pos.volume,
                         engine_state=eng.state_dict(), wall_s=time.perf_counter() - started)

    @staticmethod
    def _scan(ts: np.ndarray, px: np.ndarray, i: int, lo: float, hi: float, until: float, inf: float) -> int:
        """First index ≥ i whose price leaves (lo, hi) or whose time reaches `until`."""
        n = px.shape[0]
        # an int key: a float one would make numpy convert the whole int64 array on every call
        stop = n if until == inf else int(np.searchsorted(ts, math.ceil(until), side="left"))
        k, step = i, 512
        while k < stop:
            end = min(stop, k + step)
            seg = px[k:end]
            out = np.flatnonzero((seg <= lo) | (seg >= hi))
            if out.shape[0]:
                return k + int(out[0])
            k = end
            step *= 4
        return stop


def progress_bar(stream=None) -> ProgressFn | None:
    """A one-line progress bar on stderr, only when it is a terminal."""
    stream = stream or sys.stderr
    if not stream.isatty():
        return None
    start = time.perf_counter()

    def show(done: int, total: int) -> None:
        frac = done / total if total else 1.0
        bar = "#" * int(frac * 30)
        took = time.perf_counter() - start
        stream.write(f"\r[{bar:<30}] {frac:6.1%} {done:,}/{total:,} trades {took:5.1f}s")
        if done >= total:
            stream.write("\n")
        stream.flush()

    return show
