"""Order sizes and limit prices that Upbit accepts: whole-won KRW, 8-decimal volume, tick grid,
and the 5,000 KRW minimum (with the dust rule for the last partial sell).

All money here is `Decimal`; the engine's float prices are converted once, at decision time.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from trader.upbit.rules import FEE_RATE, MIN_ORDER_KRW, quantize_volume, round_price, tick_size

_ONE = Decimal(1)


def to_decimal(price: float) -> Decimal:
    """A float price from the feed as the exact short decimal it was sent as (e.g. 3521000.0)."""
    return Decimal(repr(price))


def entry_krw(order_krw: Decimal | None, order_fraction: float | None, krw_free: Decimal) -> Decimal | None:
    """KRW to spend on an entry (fee excluded), whole won, or None when below the minimum.

    The spend is capped so that spend + fee fits in the free KRW.
    """
    affordable = (krw_free / (_ONE + FEE_RATE)).quantize(_ONE, rounding=ROUND_DOWN)
    if order_krw is not None:
        want = Decimal(order_krw).quantize(_ONE, rounding=ROUND_DOWN)
    else:
        share = krw_free * Decimal(repr(order_fraction)) / (_ONE + FEE_RATE)
        want = share.quantize(_ONE, rounding=ROUND_DOWN)
    krw = min(want, affordable)
    return krw if krw >= MIN_ORDER_KRW else None


def bid_price(price: float, offset_ticks: int) -> Decimal:
    """Limit bid `offset_ticks` below the last trade, on the tick grid."""
    p = round_price(to_decimal(price), "down")
    for _ in range(offset_ticks):
        p = round_price(p - tick_size(p - tick_size(p) / 2), "down")
    return p


def ask_price(price: float, offset_ticks: int) -> Decimal:
    """Limit ask `offset_ticks` above the last trade, on the tick grid."""
    p = round_price(to_decimal(price), "up")
    for _ in range(offset_ticks):
        p = round_price(p + tick_size(p), "up")
    return p


def bid_volume(krw: Decimal, limit_price: Decimal) -> Decimal:
    """Volume a limit bid of `krw` buys at `limit_price` (8 decimals, floored)."""
    return quantize_volume(krw / limit_price)


def ladder_volume(entry_volume: Decimal, fraction: float, held: Decimal) -> Decimal:
    """Volume of a take-profit step: a fraction of the position right after entry, capped at
    what is held, 8 decimals."""
    return min(quantize_volume(entry_volume * Decimal(repr(fraction))), held)


def below_minimum(volume: Decimal, price: Decimal) -> bool:
    """True when selling `volume` at `price` is under Upbit's 5,000 KRW minimum."""
    return volume * price < MIN_ORDER_KRW
