"""StrategyEngine: the declared rules composed into one pure, deterministic `on_tick`.

Contract (the live loop, paper trading and the backtest all drive it the same way):
- `on_tick(tick, position) -> list[Intent]` (or `on_price(ts_ms, price, position)`, the same
  code without building a Tick): at most one intent per call, none while `position.pending`.
  Market observation (indicators, the peak since entry) happens on every call, pending or not.
  Stops are evaluated on every trade. The loops report `pending` for an order that must finish
  before the next decision (an entry, a market exit), not for a resting take-profit limit: a stop
  may fire while it rests, and execution cancels the take-profit before selling; the strategy
  re-emits the resting take-profit's intent until its result comes, and loops drop the repeat.
- `on_order_result(intent, filled_volume, avg_price, ts_ms)`: execution reports what an intent
  achieved once its order is final (after any timeout fallback; zero if nothing filled). Entry
  count, ladder progress and cooldown clocks advance only here.
- Intent ids come from market time: `<market>:<ts_ms of the deciding trade>:<reason>`, with
  `:<n>` added for the n-th further id issued in the same millisecond (a rejected entry retried on
  the next trade of that ms), so they never repeat — not even after the state is lost and the
  engine starts fresh, which a per-position counter did (the new order's Upbit `identifier`
  collided with an old order's, and the old result was taken as the new one's). Until its result
  comes, an intent is *outstanding*: a decision for the same reason re-emits its id (a resting
  take-profit on every tick; after a crash between sending and learning the result, the saved
  state holds it), and execution's identifier makes that resend harmless. The backtest and paper
  see the same trades, so they issue the same ids.
- Every intent carries `trigger_price`, the deciding trade's price.
- `state_dict()` / `load_state()` / `from_state()`: JSON-serialisable state.
- `quiet(position) -> (lo, hi, until_ms)` (also `quiet_band`/`quiet_until`): "skippable"
  means: for every following trade with lo < price < hi and ts < until_ms, fed with this same
  `position`, `on_tick` returns [] and its only state changes are market observations
  (indicator windows, daily candle, closed-candle MAs, the peak since entry) that
  `advance(ts_array, price_array)` replays exactly — so results are identical with skipping.

Ladder and dust rules (Upbit's 5,000 KRW minimum): a take-profit step sells
`sell × (volume right after entry)`; if what would remain is below the minimum the step sells
everything instead; if the step itself is below the minimum it is merged into the next step
(its fraction is carried), and a too-small last step is dropped, leaving its share to the other
exits. A position worth less than the minimum is dust: it cannot be sold on Upbit, so the engine
treats the market as flat (a later entry buys on top of it and the next exit sells both).
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np

from trader.domain import Intent, IntentKind, PositionView, Tick
from trader.strategy import sizing
from trader.strategy.config import MARKET_ONLY_REASONS, StrategyConfig
from trader.strategy.cooldown import CooldownClock
from trader.strategy.entry import EntryRules
from trader.strategy.exits import ExitRules
from trader.upbit.rules import MIN_ORDER_KRW

INF = math.inf
MIN_F = float(MIN_ORDER_KRW)
STATE_VERSION = 2
# v1 counted ids per position (`<market>:<entry_no>:<reason>`); its states load, with nothing
# outstanding (a v1 id never equals a v2 id, so no new id can collide with an old one)
OLD_STATE_VERSIONS = frozenset({1})


class StrategyEngine:
    """One market, one strategy config; all state is plain data (see `state_dict`)."""

    def __init__(self, config: StrategyConfig) -> None:
        self.config = config
        self.market = config.market
        self.entry = EntryRules(config.entry)
        self.exits = ExitRules(config.exits)
        self.cooldown = CooldownClock(config.cooldown)
        lim = config.limit_orders
        self._limit_for = frozenset(lim.use_for) - set(MARKET_ONLY_REASONS)
        self._n_steps = len(config.exits.take_profit)
        # position state
        self.entry_no = 0  # entries completed so far; the current position is entry number entry_no
        self.in_position = False
        self.entry_ts = 0
        self.entry_volume: Decimal | None = None
        self.peak = 0.0
        self.tp_done = 0
        self.tp_carry = 0.0
        # reason -> id of the intent whose result has not come yet (re-emitted until it does)
        self.outstanding: dict[str, str] = {}
        self.id_ts = -1  # market time (ms) in the last new intent id
        self.id_n = 0  # further ids issued in that ms (their suffix)
        self.last_ts = 0
        self.last_price = 0.0
        # float views of the last PositionView numbers (Decimal → float once per change)
        self._pv_vol: Decimal | None = None
        self._pv_avg: Decimal | None = None
        self._vol_f = 0.0
        self._avg_f = 0.0
        self._observers = self.entry.observers() + self.exits.observers()

    # ------------------------------------------------------------------ market observation
    def advance(self, ts: np.ndarray, prices: np.ndarray) -> None:
        """Replay skipped trades (arrays, oldest first) exactly as `on_tick` would observe them."""
        if ts.shape[0] == 0:
            return
        self.entry.advance(ts, prices)
        self.exits.advance(ts, prices)
        if self.in_position:
            top = float(prices.max())
            if top > self.peak:
                self.peak = top
        self.last_ts = int(ts[-1])
        self.last_price = float(prices[-1])

    def _floats(self, position: PositionView) -> tuple[float, float]:
        if position.volume is not self._pv_vol:
            self._pv_vol = position.volume
            self._vol_f = float(position.volume)
        if position.avg_buy_price is not self._pv_avg:
            self._pv_avg = position.avg_buy_price
            self._avg_f = float(position.avg_buy_price)
        return self._vol_f, self._avg_f

    # ------------------------------------------------------------------ decisions
    def on_tick(self, tick: Tick, position: PositionView) -> list[Intent]:
        """Observe one trade and decide (see the module docstring)."""
        return self.on_price(tick.ts_ms, tick.price, position)

    def on_price(self, ts: int, p: float, position: PositionView) -> list[Intent]:
        """`on_tick` without the Tick object: the same code, for loops that hold prices in arrays."""
        for update in self._observers:
            update(ts, p)
        self.last_ts = ts
        self.last_price = p
        in_position = self.in_position
        if in_position and p > self.peak:
            self.peak = p
        if position.pending:
            return []
        vol = position.volume
        if vol is not self._pv_vol:
            self._pv_vol = vol
            self._vol_f = float(vol)
        flat = self._vol_f * p < MIN_F
        if flat and not in_position:  # the common case first: nothing held, look for an entry
            return self._enter(ts, p, position)
        avg = position.avg_buy_price
        if avg is not self._pv_avg:
            self._pv_avg = avg
            self._avg_f = float(avg)
        avg_f = self._avg_f
        if in_position:
            if flat:
                self._close_out()
            else:
                if self.entry_volume is None:
                    self.entry_volume = position.volume
                return self._exit(ts, p, avg_f, position)
        elif not flat:
            self._adopt(ts, p, position)
            return self._exit(ts, p, avg_f, position)
        return self._enter(ts, p, position)

    def _close_out(self) -> None:
        self.in_position = False
        self.entry_volume = None
        self.tp_done = 0
        self.tp_carry = 0.0
        self.peak = 0.0

    def _adopt(self, ts: int, p: float, position: PositionView) -> None:
        """A position the engine did not open (manual buy, lost state): manage it from now."""
        self.entry_no += 1
        self.in_position = True
        self.entry_ts = ts
        self.entry_volume = position.volume
        self.peak = max(p, float(position.avg_buy_price))
        self.tp_done = 0
        self.tp_carry = 0.0
        self.outstanding = {}  # what an unknown past decided is not this position's

    def _intent_id(self, ts: int, reason: str) -> str:
        """The outstanding id for `reason`, else a new one from market time (see the docstring)."""
        iid = self.outstanding.get(reason)
        if iid is not None:
            return iid
        if ts > self.id_ts:
            self.id_ts, self.id_n = ts, 0
            iid = f"{self.market}:{ts}:{reason}"
        else:
            # same ms (or a feed that stepped back): (id_ts, id_n) only grows, so ids stay unique
            self.id_n += 1
            iid = f"{self.market}:{self.id_ts}:{reason}:{self.id_n}"
        self.outstanding[reason] = iid
        return iid

    def _enter(self, ts: int, p: float, position: PositionView) -> list[Intent]:
        if not self.entry.ready(p) or self.cooldown.blocked_until(ts) is not None:
            return []
        cfg = self.config
        krw = sizing.entry_krw(cfg.order_krw, cfg.order_fraction, position.krw_free)
        if krw is None:
            return []
        iid = self._intent_id(ts, "entry")
        trigger = sizing.to_decimal(p)
        if "entry" in self._limit_for:
            lim = cfg.limit_orders
            price = sizing.bid_price(p, lim.offset_ticks)
            return [Intent(self.market, IntentKind.BUY, "entry", ts, iid, krw=krw,
                           volume=sizing.bid_volume(krw, price), limit_price=price,
                           timeout_s=lim.timeout_s, on_timeout=lim.on_timeout,
                           offset_ticks=lim.offset_ticks, trigger_price=trigger)]
        return [Intent(self.market, IntentKind.BUY, "entry", ts, iid, krw=krw, trigger_price=trigger)]

    def _sell(self, ts: int, p: float, reason: str, kind: IntentKind, volume: Decimal,
              limit_key: str, trigger: Decimal | None = None) -> Intent:
        iid = self._intent_id(ts, reason)
        if trigger is None:
            trigger = sizing.to_decimal(p)
        if limit_key in self._limit_for:
            lim = self.config.limit_orders
            return Intent(self.market, kind, reason, ts, iid, volume=volume,
                          limit_price=sizing.ask_price(p, lim.offset_ticks),
                          timeout_s=lim.timeout_s, on_timeout=lim.on_timeout,
                          offset_ticks=lim.offset_ticks, trigger_price=trigger)
        return Intent(self.market, kind, reason, ts, iid, volume=volume, trigger_price=trigger)

    def _exit(self, ts: int, p: float, avg: float, position: PositionView) -> list[Intent]:
        reason = self.exits.check(ts, p, avg, self.peak, self.entry_ts)
        if reason is not None:
            return [self._sell(ts, p, reason, IntentKind.SELL, position.volume, reason)]
        mults = self.exits.tp_mults
        while self.tp_done < self._n_steps and p >= avg * mults[self.tp_done]:
            step = self.tp_done
            frac = self.exits.tp_sells[step] + self.tp_carry
            held = position.volume
            assert self.entry_volume is not None
            vol = sizing.ladder_volume(self.entry_volume, frac, held)
            price = sizing.to_decimal(p)
            reason = f"take_profit_{step + 1}"
            rest = held - vol
            if rest <= 0 or sizing.below_minimum(rest, price):
                return [self._sell(ts, p, reason, IntentKind.SELL, held, "take_profit", price)]
            if sizing.below_minimum(vol, price):
                # too small to place: merge into the next step (or drop it if it is the last)
                self.tp_carry = frac
                self.tp_done = step + 1
                continue
            return [self._sell(ts, p, reason, IntentKind.SELL_PARTIAL, vol, "take_profit", price)]
        return []

    # ------------------------------------------------------------------ execution feedback
    def on_order_result(self, intent: Intent, filled_volume: Decimal, avg_price: Decimal | None,
                        ts_ms: int) -> None:
        """What an intent achieved once its order is final (possibly nothing)."""
        reason = intent.reason
        filled = Decimal(filled_volume) > 0
        if self.outstanding.get(reason) == intent.intent_id:
            # its result is in: the next decision for this reason is a new one (a stale result of
            # an older intent must not release the id of one still in flight)
            del self.outstanding[reason]
        if intent.kind is IntentKind.BUY:
            if not filled:
                return
            self.entry_no += 1
            self.in_position = True
            self.entry_ts = ts_ms
            self.entry_volume = None  # captured from the ledger at the next tick
            self.peak = float(avg_price) if avg_price is not None else self.last_price
            self.tp_done = 0
            self.tp_carry = 0.0
            self.outstanding = {}  # nothing of an earlier position is this one's
            self.cooldown.on_entry(ts_ms)
            return
        if not filled:
            return
        self.cooldown.on_sell(reason, ts_ms)
        if reason.startswith("take_profit_"):
            self.tp_done = max(self.tp_done, int(reason.rsplit("_", 1)[1]))
            self.tp_carry = 0.0

    # ------------------------------------------------------------------ skipping
    def quiet(self, position: PositionView) -> tuple[float, float, float]:
        """(lo, hi, until_ms) — see the module docstring for the exact promise."""
        if position.pending:
            return -INF, INF, INF
        p = self.last_price
        vol_f, avg_f = self._floats(position)
        dust_edge = MIN_F / vol_f if vol_f > 0 else INF  # price where the holding stops being dust
        if self.in_position:
            if self.entry_volume is None or vol_f * p < MIN_F:
                return p, p, 0.0  # a bookkeeping step is due at the next trade
            lo, hi, until = self.exits.band(p, avg_f, self.peak, self.entry_ts, self.tp_done)
            return max(lo, dust_edge), hi, until
        if vol_f * p >= MIN_F:
            return p, p, 0.0  # an unknown position will be adopted at the next trade
        blocked = self.cooldown.blocked_until(self.last_ts)
        if blocked is not None:
            return -INF, dust_edge, float(blocked)
        cfg = self.config
        if sizing.entry_krw(cfg.order_krw, cfg.order_fraction, position.krw_free) is None:
            return -INF, dust_edge, INF
        band = self.entry.band(p)
        if band is None:
            return p, p, 0.0
        lo, hi, until = band
        return lo, min(hi, dust_edge), until

    def quiet_band(self, position: PositionView) -> tuple[float, float]:
        lo, hi, _ = self.quiet(position)
        return lo, hi

    def quiet_until(self, position: PositionView) -> float:
        return self.quiet(position)[2]

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict:
        return {
            "version": STATE_VERSION,
            "market": self.market,
            "entry_no": self.entry_no,
            "in_position": self.in_position,
            "entry_ts": self.entry_ts,
            "entry_volume": None if self.entry_volume is None else str(self.entry_volume),
            "peak": self.peak,
            "tp_done": self.tp_done,
            "tp_carry": self.tp_carry,
            "outstanding": dict(self.outstanding),
            "id_ts": self.id_ts,
            "id_n": self.id_n,
            "last_ts": self.last_ts,
            "last_price": self.last_price,
            "cooldown": self.cooldown.to_state(),
            "entry_rules": self.entry.to_state(),
            "exit_rules": self.exits.to_state(),
        }

    def load_state(self, d: dict) -> None:
        version = d.get("version")
        if (version != STATE_VERSION and version not in OLD_STATE_VERSIONS) or d.get("market") != self.market:
            raise ValueError(f"strategy state is for {d.get('market')!r} v{version}, "
                             f"not {self.market!r} v{STATE_VERSION}")
        self.entry_no = int(d["entry_no"])
        self.in_position = bool(d["in_position"])
        self.entry_ts = int(d["entry_ts"])
        self.entry_volume = None if d["entry_volume"] is None else Decimal(d["entry_volume"])
        self.peak = float(d["peak"])
        self.tp_done = int(d["tp_done"])
        self.tp_carry = float(d["tp_carry"])
        if version == STATE_VERSION:
            self.outstanding = {str(k): str(v) for k, v in d["outstanding"].items()}
            self.id_ts = int(d["id_ts"])
            self.id_n = int(d["id_n"])
        else:  # v1: its counters named no market time; new ids start from the next decision's
            self.outstanding = {}
            self.id_ts, self.id_n = -1, 0
        self.last_ts = int(d["last_ts"])
        self.last_price = float(d["last_price"])
        self.cooldown.load(d["cooldown"])
        self.entry.load(d["entry_rules"])
        self.exits.load(d["exit_rules"])

    @classmethod
    def from_state(cls, config: StrategyConfig, d: dict) -> StrategyEngine:
        eng = cls(config)
        eng.load_state(d)
        return eng
