"""The execution policy: what happens to an intent's orders over time — the one implementation.

The backtest (`trader.backtest.runner`, in-process matching, market-time clock) and the live/paper
order manager (`trader.execution.order_manager`, an exchange client over HTTP) both *drive* an
intent through these decisions and differ only in how they talk to the exchange and wait:

- **placement**: the first order is the intent's own (`limit_price` → a limit order on the tick
  grid; none → a market order), sized against what the exchange says is free (`plan_order`,
  built on `trader.execution.sizing`: 8-decimal volumes, whole-won KRW, fee reserved, Upbit's
  5,000 KRW minimum, dust, the stranded-remainder rule);
- **timeout in market time**: a resting limit order times out on the first trade at or after
  `sent_at + timeout_s` (`limit_deadline_ms`, `timed_out`), the market time being the last
  trade's timestamp in every mode;
- **after a limit order ends unfilled or partly filled** (`next_step`): `on_timeout` says
  `market` (the rest at market), `reprice` (the rest again as a limit `offset_ticks` from the
  last price, with a fresh timeout; after `MAX_REPRICES` re-posts a sell goes at market and a buy
  gives up) or `cancel` (keep what filled); nothing follows a superseded order, a filled order,
  or a rest below the minimum;
- **superseding** (`supersedes`): a new sell decision of a market cancels our resting limit sells
  of that market first (a stop-loss must never wait behind a take-profit); the superseded
  intent reports what it filled and gets no fallback.

Everything here is pure (no I/O, no clock): a parity test drives the backtest and paper lockstep
over loopback through every `use_for` × `on_timeout` combination and requires identical fills.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from trader.domain import Intent, IntentKind, OrdType, Side
from trader.execution.sizing import Size, size_limit_buy, size_market_buy, size_sell
from trader.strategy.sizing import ask_price, bid_price
from trader.upbit.rules import FEE_RATE, MIN_ORDER_KRW, quantize_volume, round_price

MAX_REPRICES = 3  # limit re-posts of one intent before a sell goes at market and a buy gives up
_ZERO = Decimal(0)


def attempt_identifier(intent: Intent, namespace: str, attempt: int) -> str:
    """Upbit `identifier` of the n-th order of an intent: attempt 0 is `intent.identifier(namespace)`,
    a resize, re-price or market fallback gets the next attempt number (never reused)."""
    if attempt == 0:
        return intent.identifier(namespace)
    return replace(intent, intent_id=f"{intent.intent_id}#a{attempt}").identifier(namespace)


# ---- placement ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PlannedOrder:
    """The next order of an intent, sized; `refused` (a reason) when nothing can be sent."""

    side: Side
    ord_type: OrdType  # LIMIT | PRICE (market buy by KRW) | MARKET (market sell by volume)
    price: Decimal | None  # unit price (LIMIT) or KRW total (PRICE)
    volume: Decimal | None  # coin volume (LIMIT, MARKET)
    note: str = ""
    refused: str | None = None  # "dust" or the sizing note; None = send it

    @property
    def ok(self) -> bool:
        return self.refused is None


def _refused(side: Side, ord_type: OrdType, size: Size) -> PlannedOrder:
    return PlannedOrder(side, ord_type, None, None, size.note, "dust" if size.dust else size.note)


def plan_order(
    intent: Intent,
    *,
    krw_free: Decimal,
    coin_free: Decimal,
    price_ref: Decimal | None,
    remaining: Decimal | None = None,
    ord_type: OrdType | None = None,
    limit_price: Decimal | None = None,
    fee_rate: Decimal = FEE_RATE,
    min_krw: Decimal = MIN_ORDER_KRW,
) -> PlannedOrder:
    """Size the next order of `intent` against the free balances.

    Without `remaining`/`ord_type` it is the intent's first order (its own limit price, or a
    market order); a fallback passes what is left (`remaining`: KRW for a buy, coin for a sell)
    and the order type (`ord_type=MARKET`, or `LIMIT` with `limit_price`).
    `price_ref` is the price a sell's minimum-order check uses (the last trade's).
    """
    if limit_price is None and ord_type is None:
        limit_price = intent.limit_price
    use_limit = limit_price is not None and ord_type in (None, OrdType.LIMIT)
    if intent.kind is IntentKind.BUY:
        krw_want = remaining if remaining is not None else (intent.krw or _ZERO)
        if use_limit:
            assert limit_price is not None
            price = round_price(limit_price, "down")
            size = size_limit_buy(krw_want, price, krw_free, fee_rate=fee_rate, min_krw=min_krw)
            if not size.ok:
                return _refused(Side.BID, OrdType.LIMIT, size)
            return PlannedOrder(Side.BID, OrdType.LIMIT, price, size.amount, size.note)
        size = size_market_buy(krw_want, krw_free, fee_rate=fee_rate, min_krw=min_krw)
        if not size.ok:
            return _refused(Side.BID, OrdType.PRICE, size)
        return PlannedOrder(Side.BID, OrdType.PRICE, size.amount, None, size.note)
    full_exit = intent.kind is IntentKind.SELL and remaining is None
    want = remaining if remaining is not None else (intent.volume or _ZERO)
    ref = limit_price if use_limit else price_ref
    size = size_sell(want, coin_free, ref, full_exit=full_exit, min_krw=min_krw)
    kind = OrdType.LIMIT if use_limit else OrdType.MARKET
    if not size.ok:
        return _refused(Side.ASK, kind, size)
    if use_limit:
        assert limit_price is not None
        return PlannedOrder(Side.ASK, OrdType.LIMIT, round_price(limit_price, "up"), size.amount, size.note)
    return PlannedOrder(Side.ASK, OrdType.MARKET, None, size.amount, size.note)


# ---- time --------------------------------------------------------------------------------------
def limit_deadline_ms(sent_market_ms: int, timeout_s: float | None, default_s: float) -> int:
    """Market time at which a limit order sent at `sent_market_ms` times out."""
    timeout = timeout_s if timeout_s is not None else default_s
    return sent_market_ms + int(max(timeout, 0.0) * 1000)


def timed_out(market_ms: int | None, deadline_ms: int | None) -> bool:
    """The first trade at or after the deadline times the order out."""
    return market_ms is not None and deadline_ms is not None and market_ms >= deadline_ms


# ---- after a limit order ended ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NextStep:
    """What follows a limit order that ended (cancelled at its timeout) unfilled or partly."""

    ord_type: OrdType  # MARKET (the rest at market) or LIMIT (re-priced)
    remaining: Decimal  # KRW left to spend (buy) or coin left to sell (sell)
    limit_price: Decimal | None = None  # the re-priced limit (LIMIT only)


def remaining_of(intent: Intent, filled: Decimal, funds: Decimal, last_volume: Decimal | None) -> Decimal:
    """What the intent still has to do after its orders filled `filled` coin for `funds` KRW."""
    if intent.kind is IntentKind.BUY:
        return (intent.krw or _ZERO) - funds
    target = intent.volume if intent.volume is not None else (last_volume or _ZERO) + filled
    return quantize_volume(target - filled)


def reprice(intent: Intent, last_price: float | Decimal, offset_ticks: int) -> Decimal:
    """The re-posted limit price: `offset_ticks` from the last trade, as the first placement."""
    p = float(last_price)
    return bid_price(p, offset_ticks) if intent.kind is IntentKind.BUY else ask_price(p, offset_ticks)


def next_step(
    intent: Intent,
    *,
    ended: str,
    superseded: bool,
    filled: Decimal,
    funds: Decimal,
    last_volume: Decimal | None,
    reprices: int,
    last_price: float | Decimal | None,
    offset_ticks: int,
    max_reprices: int = MAX_REPRICES,
) -> NextStep | None:
    """The fallback after the intent's current limit order ended (`ended`: "cancel" or "done"),
    or None when the intent is finished. `filled`/`funds` are over ALL its orders so far,
    `reprices` the limit re-posts already made, `last_volume` the ended order's volume."""
    if superseded or ended != "cancel":
        return None
    policy = intent.on_timeout
    if policy == "reprice" and reprices >= max_reprices:
        policy = "market" if intent.side is Side.ASK else "cancel"
    if policy not in ("market", "reprice"):
        return None
    remaining = remaining_of(intent, filled, funds, last_volume)
    if remaining <= 0:
        return None
    if policy == "market":
        return NextStep(OrdType.MARKET, remaining)
    if last_price is None:
        return None
    return NextStep(OrdType.LIMIT, remaining, reprice(intent, last_price, offset_ticks))


# ---- superseding -------------------------------------------------------------------------------
def supersedes(new: Intent, resting: Intent) -> bool:
    """A new sell decision cancels a resting sell intent of the same market before it goes out."""
    return (
        new.market == resting.market
        and new.intent_id != resting.intent_id
        and new.side is Side.ASK
        and resting.side is Side.ASK
    )
