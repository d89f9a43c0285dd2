"""Order sizing and the free-balance guard: never ask the exchange for more than it will give.

freqtrade's most reported failure is a sell for the volume the database believes in, which after
partial fills and fees is more than the exchange's free balance (`insufficient_funds_ask` /
`invalid_volume_ask`). Sells are therefore sized from the exchange's *free* balance, quantized
down to 8 decimals; a sell worth less than the minimum order is dust, and a partial sell that
would strand a remainder below the minimum sells everything instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from trader.upbit.rules import FEE_RATE, MIN_ORDER_KRW, quantize_volume


@dataclass(frozen=True, slots=True)
class Size:
    """What to send: `amount` is a coin volume (sell, limit buy) or KRW (market buy); 0 = nothing."""

    amount: Decimal
    dust: bool = False
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.amount > 0


def size_sell(
    intended: Decimal,
    free: Decimal,
    price: Decimal | None,
    *,
    full_exit: bool,
    min_krw: Decimal = MIN_ORDER_KRW,
) -> Size:
    """Volume to sell: min(intended, free) quantized; dust below `min_krw` is not sent.

    `full_exit` (a SELL of the whole position) sells all the free balance even when the ledger's
    figure is a hair larger or smaller than the exchange's.
    """
    free = quantize_volume(max(free, Decimal(0)))
    want = free if full_exit else quantize_volume(min(intended, free))
    if want <= 0:
        return Size(Decimal(0), dust=False, note=f"no free balance (free={free})")
    if price is not None and price > 0:
        if want * price < min_krw:
            return Size(Decimal(0), dust=True, note=f"dust: {want} x {price} < {min_krw} KRW")
        remainder = free - want
        if remainder > 0 and remainder * price < min_krw:
            # the remainder could never be sold on its own: take it now
            return Size(free, note=f"remainder {remainder} below minimum, selling all")
    return Size(want)


def size_market_buy(
    intended_krw: Decimal,
    krw_free: Decimal,
    *,
    fee_rate: Decimal = FEE_RATE,
    min_krw: Decimal = MIN_ORDER_KRW,
) -> Size:
    """KRW total of a market buy (fee excluded, as Upbit's `price`), capped by free KRW incl. fee."""
    cap = (max(krw_free, Decimal(0)) / (1 + fee_rate)).to_integral_value(rounding=ROUND_FLOOR)
    krw = min(Decimal(intended_krw).to_integral_value(rounding=ROUND_FLOOR), cap)
    if krw < min_krw:
        return Size(Decimal(0), dust=True, note=f"buy {krw} KRW below minimum {min_krw} (free {krw_free})")
    return Size(krw)


def size_limit_buy(
    intended_krw: Decimal,
    price: Decimal,
    krw_free: Decimal,
    *,
    fee_rate: Decimal = FEE_RATE,
    min_krw: Decimal = MIN_ORDER_KRW,
) -> Size:
    """Coin volume of a limit buy at `price` spending at most `intended_krw` (and the free KRW)."""
    krw = size_market_buy(intended_krw, krw_free, fee_rate=fee_rate, min_krw=min_krw)
    if not krw.ok:
        return krw
    volume = quantize_volume(krw.amount / price)
    if volume * price < min_krw:
        return Size(Decimal(0), dust=True, note=f"limit buy {volume} x {price} below minimum")
    return Size(volume)
