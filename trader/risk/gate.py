"""The risk gate: the one place between the strategies and execution that can refuse an entry.

Only BUY intents are ever refused or resized; exits always pass, also when halted (freqtrade's
locks and NautilusTrader's REDUCING state block entries, never the way out). The gate is pure and
deterministic: it reads the caller's `RiskView` and the market time it is given, never the wall
clock, so a backtest and the live loop fed the same events reach the same verdicts.

Rules, in the order they are checked (the first that refuses names itself in the verdict):
1. the trading state (`halted`, `reducing` refuse every entry);
2. the daily loss limit: once equity is `daily_loss_limit` below the equity at the trading day's
   start (09:00 KST = 00:00 UTC), no entries until the next 09:00 KST;
3. the stop-loss guard: after N stop-loss exits within a window, no entries (in that market or
   all) for a pause;
4. `max_open_positions` (a market already held does not take a new slot);
5. the size: the allocation (or the strategy's own size), capped by the exposure limits and the
   free KRW with its fee reserved (`trader.strategy.sizing.entry_krw`), refused below 5,000 KRW.
The maximum drawdown halt sets the state to `halted`; only `set_state` lifts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from decimal import ROUND_DOWN, Decimal
from typing import Any

from trader.domain import Intent, IntentKind
from trader.risk.spec import AllocationSpec, RiskSpec, TradingState
from trader.strategy.cooldown import STOP_REASONS
from trader.strategy.indicators import DAY_MS  # Upbit's day: 00:00 UTC = 09:00 KST
from trader.strategy.sizing import entry_krw
from trader.timeutil import ms_to_datetime
from trader.upbit.rules import MIN_ORDER_KRW

STATE_VERSION = 1
_KST = timezone(timedelta(hours=9), "KST")
_ALL = "*"  # the pause key of a guard that spans every market
_KEEP_IDS = 256  # stop-loss intents remembered so that a repeated result is not counted twice


def _kst(ts_ms: int) -> str:
    return ms_to_datetime(ts_ms).astimezone(_KST).strftime("%Y-%m-%d %H:%M:%S KST")


def _pct(x: Decimal) -> str:
    return f"{float(x) * 100:.2f} %"


@dataclass(frozen=True, slots=True)
class RiskView:
    """What the gate sees of the portfolio; the caller builds it from the ledger.

    `positions` holds the marked KRW value of each market's position; `open_positions` counts the
    markets holding more than dust, buys in flight included.
    """

    ts_ms: int
    equity: Decimal
    krw_free: Decimal
    positions: Mapping[str, Decimal]
    open_positions: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """`krw` is the entry's size after allocation and caps (set for every allowed BUY, None for
    exits and refusals); `rule` names the rule that refused or shrank the entry."""

    allowed: bool
    reason: str
    krw: Decimal | None = None
    rule: str | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    ts_ms: int
    market: str
    rule: str
    reason: str
    intent_id: str


@dataclass(frozen=True, slots=True)
class RiskEvent:
    """A rule that fired (daily loss lock, drawdown halt, guard pause) or a state the user set."""

    ts_ms: int
    rule: str
    detail: str


@dataclass
class _Clock:
    """The gate's mutable memory; `state_dict` is exactly this."""

    state: TradingState
    state_reason: str = ""
    peak: Decimal | None = None
    day: int = -1
    day_start: Decimal | None = None
    daily_lock_until: int = 0
    stops: list[tuple[int, str]] = field(default_factory=list)  # (ts_ms, market) within the window
    counted: list[str] = field(default_factory=list)  # intent ids of the stop-losses counted
    pauses: dict[str, int] = field(default_factory=dict)  # market or "*" -> entries resume at


class RiskGate:
    """Says yes or no to each intent, with the reason; see the module docstring for the rules."""

    def __init__(self, rules: RiskSpec, allocation: AllocationSpec | None = None,
                 state: TradingState | None = None) -> None:
        self.rules = rules
        self.allocation = allocation
        self._c = _Clock(state=rules.state if state is None else TradingState(state))
        self.refusals: list[Refusal] = []
        self.events: list[RiskEvent] = []

    # -- what the user and the caller tell the gate ------------------------------------------

    @property
    def state(self) -> TradingState:
        return self._c.state

    def set_state(self, state: TradingState, reason: str = "", ts_ms: int = 0) -> None:
        """The user's switch. Leaving `halted` re-arms the drawdown halt from the next equity
        (the old peak would halt again at once); the daily lock and guard pauses keep running."""
        state = TradingState(state)
        if state is not TradingState.HALTED:
            self._c.peak = None
        self._c.state, self._c.state_reason = state, reason
        self.events.append(RiskEvent(ts_ms, "state", f"{state.value}: {reason}" if reason else state.value))

    def on_equity(self, ts_ms: int, equity: Decimal) -> None:
        """A mark of the portfolio's equity: tracks the day's start and the peak."""
        c, rules = self._c, self.rules
        day = ts_ms // DAY_MS
        if day > c.day:
            c.day, c.day_start = day, equity
        limit = rules.daily_loss_limit
        if (limit is not None and day == c.day and c.day_start is not None and c.day_start > 0
                and equity <= c.day_start * (1 - limit) and c.daily_lock_until <= ts_ms):
            c.daily_lock_until = (day + 1) * DAY_MS
            loss = (c.day_start - equity) / c.day_start
            self.events.append(RiskEvent(ts_ms, "daily_loss_limit",
                                         f"equity {_pct(loss)} below the day's start (limit "
                                         f"{_pct(limit)}); entries resume at {_kst(c.daily_lock_until)}"))
        halt = rules.max_drawdown_halt
        if halt is None:
            return
        if c.peak is None or equity > c.peak:
            c.peak = equity
        if c.state is not TradingState.HALTED and c.peak > 0 and equity <= c.peak * (1 - halt):
            dd = (c.peak - equity) / c.peak
            c.state = TradingState.HALTED
            c.state_reason = f"max_drawdown_halt: equity {_pct(dd)} below its peak (limit {_pct(halt)})"
            self.events.append(RiskEvent(ts_ms, "max_drawdown_halt", c.state_reason))

    def on_result(self, intent: Intent, filled: Decimal, ts_ms: int) -> None:
        """What an intent achieved; stop-loss exits that filled feed the stop-loss guard."""
        guard = self.rules.stop_loss_guard
        if (guard is None or intent.kind is IntentKind.BUY or filled <= 0
                or intent.reason not in STOP_REASONS):
            return
        c = self._c
        if intent.intent_id in c.counted:
            return
        c.counted = [*c.counted[-(_KEEP_IDS - 1):], intent.intent_id]
        since = ts_ms - int(guard.window_s * 1000)
        c.stops = [(t, m) for t, m in c.stops if t > since]
        c.stops.append((ts_ms, intent.market))
        mine = [s for s in c.stops if not guard.per_market or s[1] == intent.market]
        if len(mine) < guard.count:
            return
        key = intent.market if guard.per_market else _ALL
        c.pauses[key] = max(c.pauses.get(key, 0), ts_ms + int(guard.pause_s * 1000))
        c.stops = [s for s in c.stops if s not in mine]  # a pause uses up the stops that caused it
        where = intent.market if guard.per_market else "all markets"
        self.events.append(RiskEvent(ts_ms, "stop_loss_guard",
                                     f"{len(mine)} stop-losses within {guard.window_s:g} s: no entries in "
                                     f"{where} until {_kst(c.pauses[key])}"))

    # -- the verdict -------------------------------------------------------------------------

    def check(self, intent: Intent, view: RiskView) -> Verdict:
        """Allow or refuse `intent`; a BUY that is allowed gets its size in `Verdict.krw`."""
        if intent.kind is not IntentKind.BUY:
            return Verdict(True, "exit: never blocked")
        self.on_equity(view.ts_ms, view.equity)
        refusal = self._blocked(intent.market, view)
        if refusal is None:
            refusal, krw, shrunk_by = self._size(intent, view)
            if refusal is None:
                assert krw is not None
                why = f"entry of {krw} KRW" + (f", shrunk by {shrunk_by}" if shrunk_by else "")
                return Verdict(True, why, krw, shrunk_by)
        rule, reason = refusal
        self.refusals.append(Refusal(view.ts_ms, intent.market, rule, reason, intent.intent_id))
        return Verdict(False, f"{rule}: {reason}", None, rule)

    def retry_at(self, verdict: Verdict, market: str, ts_ms: int) -> int:
        """Market time from which a refused entry of `market` is worth asking again WITHOUT a change
        of the portfolio: when the rule's own clock runs out (the daily-loss lock, a stop-loss guard's
        pause), else the next trading day (09:00 KST). A fill or an order result anywhere may change
        the answer earlier: callers ask again then too. Refusals are then one per change, not one per
        trade (a refused strategy would otherwise ask on every trade)."""
        c = self._c
        next_day = (ts_ms // DAY_MS + 1) * DAY_MS  # 09:00 KST is 00:00 UTC
        if verdict.rule == "daily_loss_limit":
            return max(c.daily_lock_until, ts_ms + 1)
        if verdict.rule == "stop_loss_guard":
            until = max(c.pauses.get(market, 0), c.pauses.get(_ALL, 0))
            return max(until, ts_ms + 1)
        return next_day

    def _blocked(self, market: str, view: RiskView) -> tuple[str, str] | None:
        c, ts = self._c, view.ts_ms
        if c.state is TradingState.HALTED:
            return "halted", c.state_reason or "set by the user"
        if c.state is TradingState.REDUCING:
            return "reducing", c.state_reason or "exits only"
        if ts < c.daily_lock_until:
            return "daily_loss_limit", f"limit reached; entries resume at {_kst(c.daily_lock_until)}"
        for key in (market, _ALL):
            until = c.pauses.get(key, 0)
            if ts < until:
                return "stop_loss_guard", f"paused after stop-losses until {_kst(until)}"
        cap = self.rules.max_open_positions
        if not self._held(market, view) and view.open_positions >= cap:
            return "max_open_positions", f"{view.open_positions} of {cap} positions open"
        return None

    @staticmethod
    def _held(market: str, view: RiskView) -> bool:
        """A position worth at least the minimum order already has its slot (below it is dust)."""
        return view.positions.get(market, Decimal(0)) >= MIN_ORDER_KRW

    def _want(self, intent: Intent, view: RiskView) -> Decimal | None:
        """The KRW the allocation gives this entry (fee reserved), before the exposure caps."""
        alloc = self.allocation
        if alloc is None:
            return intent.krw
        if alloc.mode == "fixed_krw":
            return entry_krw(alloc.krw, None, view.krw_free)
        if alloc.mode == "fraction":
            assert alloc.fraction is not None
            return entry_krw(view.equity * alloc.fraction, None, view.krw_free)
        open_ = view.open_positions - (1 if self._held(intent.market, view) else 0)
        slots = max(1, self.rules.max_open_positions - open_)
        return entry_krw(None, 1 / slots, view.krw_free)

    def _size(self, intent: Intent, view: RiskView
              ) -> tuple[tuple[str, str] | None, Decimal | None, str | None]:
        """(refusal, krw, the cap that shrank it)."""
        want = self._want(intent, view)
        if want is None:
            what = "the allocation" if self.allocation is not None else "the strategy's size"
            return ("size", f"{what} is below the {MIN_ORDER_KRW} KRW minimum with "
                            f"{view.krw_free} KRW free"), None, None
        krw, shrunk_by = want, None
        rules = self.rules
        held = view.positions.get(intent.market, Decimal(0))
        caps = (("max_exposure_per_market", rules.max_exposure_per_market, held),
                ("max_exposure_total", rules.max_exposure_total, sum(view.positions.values(), Decimal(0))))
        for rule, frac, used in caps:
            if frac is None:
                continue
            room = view.equity * frac - used
            if room < krw:
                krw, shrunk_by = room, rule
        sized = entry_krw(krw, None, view.krw_free) if krw > 0 else None
        if sized is None:
            if shrunk_by is not None:
                return (shrunk_by, f"{max(krw, Decimal(0)):.0f} KRW left under the cap, below the "
                                   f"{MIN_ORDER_KRW} KRW minimum"), None, None
            return ("size", f"{view.krw_free} KRW free, with the fee reserved, is below the "
                            f"{MIN_ORDER_KRW} KRW minimum"), None, None
        if shrunk_by is None and sized < krw.quantize(Decimal(1), rounding=ROUND_DOWN):
            shrunk_by = "krw_free"
        return None, sized, shrunk_by

    # -- persistence -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The gate's memory as JSON-safe values (Decimals as strings); refusals and events are a
        record for reports, not state, and are not included."""
        c = self._c
        return {"version": STATE_VERSION, "state": c.state.value, "state_reason": c.state_reason,
                "peak": None if c.peak is None else str(c.peak), "day": c.day,
                "day_start": None if c.day_start is None else str(c.day_start),
                "daily_lock_until": c.daily_lock_until, "stops": [[t, m] for t, m in c.stops],
                "counted": list(c.counted), "pauses": dict(sorted(c.pauses.items()))}

    def load_state(self, d: Mapping[str, Any]) -> None:
        """Restore what `state_dict` gave (after a restart)."""
        if d.get("version") != STATE_VERSION:
            raise ValueError(f"risk gate state: version {d.get('version')!r}, expected {STATE_VERSION}")
        self._c = _Clock(
            state=TradingState(d["state"]), state_reason=str(d["state_reason"]),
            peak=None if d["peak"] is None else Decimal(d["peak"]), day=int(d["day"]),
            day_start=None if d["day_start"] is None else Decimal(d["day_start"]),
            daily_lock_until=int(d["daily_lock_until"]),
            stops=[(int(t), str(m)) for t, m in d["stops"]], counted=[str(i) for i in d["counted"]],
            pauses={str(k): int(v) for k, v in d["pauses"].items()})
