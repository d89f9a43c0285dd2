"""Upbit KRW-market trading rules: tick sizes (2025-07-31 table), order limits and fees.

One source for the simulator (which rejects off-tick prices with `invalid_price_*`), the
strategy (which rounds its limit prices) and execution (which sizes orders). `Decimal` versions
are exact; the float `tick_size_f` serves the strategy's hot path.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

FEE_RATE = Decimal("0.0005")  # KRW market, maker and taker
MIN_ORDER_KRW = Decimal("5000")
MAX_ORDER_KRW = Decimal("1000000000")
VOLUME_QUANTUM = Decimal("0.00000001")  # 8 decimals

# (lower bound inclusive, tick) — Upbit's KRW table in force since 2025-07-31, highest first.
_KRW_TICKS: tuple[tuple[Decimal, Decimal], ...] = tuple(
    (Decimal(lo), Decimal(tick))
    for lo, tick in (
        ("1000000", "1000"),
        ("500000", "500"),
        ("100000", "100"),
        ("50000", "50"),
        ("10000", "10"),
        ("5000", "5"),
        ("100", "1"),
        ("10", "0.1"),
        ("1", "0.01"),
        ("0.1", "0.001"),
        ("0.01", "0.0001"),
        ("0.001", "0.00001"),
        ("0.0001", "0.000001"),
        ("0.00001", "0.0000001"),
        ("0", "0.00000001"),
    )
)
# the same table as floats, for hot comparisons and the synthesizer's numpy lookup
KRW_TICKS_F: tuple[tuple[float, float], ...] = tuple((float(lo), float(t)) for lo, t in _KRW_TICKS)


def tick_size(price: Decimal) -> Decimal:
    """Tick (호가 단위) for a KRW price."""
    for lower, tick in _KRW_TICKS:
        if price >= lower:
            return tick
    return _KRW_TICKS[-1][1]


def tick_size_f(price: float) -> float:
    """Float twin of `tick_size` for the strategy's hot path."""
    for lower, tick in KRW_TICKS_F:
        if price >= lower:
            return tick
    return KRW_TICKS_F[-1][1]


def is_on_tick(price: Decimal) -> bool:
    """True when `price` lies on the tick grid of its band."""
    return price > 0 and price % tick_size(price) == 0


def round_price(price: Decimal, direction: str = "down") -> Decimal:
    """Snap a price to the tick grid: `down` (floor), `up` (ceil) or `nearest`.

    Crossing a band edge is handled: flooring 1,000,400 uses the 1,000-won tick of its band.
    """
    price = Decimal(price)
    tick = tick_size(price)
    if direction == "up":
        snapped = (price / tick).to_integral_value(rounding=ROUND_CEILING) * tick
    elif direction == "nearest":
        snapped = (price / tick).to_integral_value() * tick
    else:
        snapped = (price / tick).to_integral_value(rounding=ROUND_FLOOR) * tick
    # snapping may have moved into a band with a coarser tick; re-snap once in that band
    if tick_size(snapped) != tick:
        tick = tick_size(snapped)
        snapped = (snapped / tick).to_integral_value(rounding=ROUND_FLOOR) * tick
    return snapped.normalize() if snapped == snapped.to_integral_value() else snapped


def quantize_volume(volume: Decimal) -> Decimal:
    """Truncate a volume to Upbit's 8 decimals (never rounds up: you cannot sell what you lack)."""
    return Decimal(volume).quantize(VOLUME_QUANTUM, rounding=ROUND_DOWN)


def fee_for(notional: Decimal, rate: Decimal = FEE_RATE) -> Decimal:
    """Fee on a notional (Upbit keeps full precision in `paid_fee`; no rounding here)."""
    return notional * rate


def format_decimal(value: Decimal | int | float | str) -> str:
    """Fixed-point string as Upbit sends it: never exponent notation ('1e-05' is rejected)."""
    d = Decimal(str(value)) if not isinstance(value, Decimal) else value
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0")
        if text.endswith("."):
            text += "0"
    else:
        text += ".0"
    return text
