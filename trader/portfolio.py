"""The ledger: KRW cash, coin positions, Upbit's average buy price and realized/unrealized P&L.

Positions are derived only from fills (NautilusTrader's rule) and a fill is keyed by its
`trade_uuid`, so applying one twice is a no-op (Hummingbot's rule). Everything is `Decimal`.

Conventions (Upbit KRW market):
- `fill.fee` is the KRW fee of that fill: a bid costs `funds + fee`, an ask yields `funds - fee`.
- `avg_buy_price` is what Upbit shows in `/v1/accounts`: volume-weighted over buy fills, fees
  excluded, unchanged by sells, reset to 0 when the position is flat (`next_avg_buy_price`).
- The buy fees of the open volume stay attached to it (`cost_fees_open`); a sell releases its
  pro-rata share, so realized P&L on a sell is
  `funds - sell_fee - volume * avg_buy_price - cost_fees_open * volume / open_volume`.

Conservation law (checked by the property tests), with `K0` the initial KRW:
    krw = K0 - Σ_bids (funds + fee) + Σ_asks (funds - fee)          (exact)
    volume[m] = Σ_bids volume - Σ_asks volume                         (exact)
    krw + Σ_m (volume * avg_buy_price + cost_fees_open) = K0 + realized_total
                                               (up to the rounding of the average's division)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from trader.domain import Fill, PositionView, Side
from trader.upbit.rules import FEE_RATE

ZERO = Decimal(0)
_STATE_VERSION = 1


class LedgerError(ValueError):
    """A fill the ledger cannot account for (e.g. selling more than the open volume)."""


@dataclass(frozen=True, slots=True)
class Position:
    """One market's position. `volume` counts free + locked coin."""

    market: str
    volume: Decimal = ZERO
    avg_buy_price: Decimal = ZERO
    cost_fees_open: Decimal = ZERO  # buy fees still attached to the open volume
    realized_pnl: Decimal = ZERO  # cumulative, net of buy and sell fees
    fees_paid: Decimal = ZERO  # cumulative, buys and sells

    @property
    def is_open(self) -> bool:
        return self.volume > 0

    @property
    def cost_basis(self) -> Decimal:
        """What the open volume cost, fees included (volume × avg + attached buy fees)."""
        return self.volume * self.avg_buy_price + self.cost_fees_open


@dataclass(frozen=True, slots=True)
class FillEffect:
    """What applying one fill did: the realized P&L of a sell and the state after it."""

    fill: Fill
    realized_pnl: Decimal | None  # sells only, net of both fees
    position: Position
    krw_after: Decimal


def next_avg_buy_price(volume: Decimal, avg: Decimal, fill_volume: Decimal, fill_price: Decimal) -> Decimal:
    """Upbit's average buy price after buying `fill_volume` at `fill_price` (fees excluded).

    From flat the average is the fill price itself (no division, hence exact).
    """
    if volume <= 0:
        return fill_price
    return (volume * avg + fill_volume * fill_price) / (volume + fill_volume)


def _dec(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        raise TypeError("the ledger takes Decimal or str, never float")
    return Decimal(str(value))


def _market_key(key: str) -> str:
    """`BTC` → `KRW-BTC`; a full market name is kept."""
    return key if "-" in key else f"KRW-{key}"


class Portfolio:
    """The exact ledger. Not thread-safe by itself: the live loop owns one instance."""

    def __init__(self, krw: Decimal = ZERO, fee_rate: Decimal = FEE_RATE) -> None:
        self._krw = _dec(krw)
        self.fee_rate = _dec(fee_rate)
        self._positions: dict[str, Position] = {}
        self._applied: set[str] = set()

    # --- reading -------------------------------------------------------------------------
    @property
    def krw(self) -> Decimal:
        """KRW cash, moved only by fills (and `adopt_balances`)."""
        return self._krw

    def position(self, market: str) -> Position:
        return self._positions.get(market) or Position(market)

    def markets(self) -> list[str]:
        """Markets the ledger has seen, sorted."""
        return sorted(self._positions)

    def has_applied(self, trade_uuid: str) -> bool:
        return trade_uuid in self._applied

    def view(self, market: str, *, pending: bool = False, krw_reserved: Decimal = ZERO) -> PositionView:
        """The read-only view the strategy gets; `krw_free` excludes KRW reserved by open bids."""
        pos = self.position(market)
        return PositionView(
            market=market,
            volume=pos.volume,
            avg_buy_price=pos.avg_buy_price,
            krw_free=self._krw - krw_reserved,
            pending=pending,
        )

    def unrealized_pnl(self, market: str, price: Decimal) -> Decimal:
        """P&L of selling the open volume at `price` now: net of its attached buy fees and of the
        sell fee it would pay."""
        pos = self.position(market)
        if pos.volume <= 0:
            return ZERO
        proceeds = pos.volume * _dec(price)
        return proceeds - proceeds * self.fee_rate - pos.volume * pos.avg_buy_price - pos.cost_fees_open

    def equity(self, prices: Mapping[str, Decimal]) -> Decimal:
        """KRW + open volume marked at `prices` (gross market value, no prospective sell fee).

        Markets with an open volume but no price are valued at their average buy price.
        """
        total = self._krw
        for market, pos in self._positions.items():
            if pos.volume:
                price = prices.get(market)
                total += pos.volume * (_dec(price) if price is not None else pos.avg_buy_price)
        return total

    def realized_pnl_total(self) -> Decimal:
        return sum((p.realized_pnl for p in self._positions.values()), ZERO)

    def fees_total(self) -> Decimal:
        return sum((p.fees_paid for p in self._positions.values()), ZERO)

    # --- writing -------------------------------------------------------------------------
    def apply_fill(self, fill: Fill) -> FillEffect | None:
        """Account for one fill; None (and nothing changes) if its trade_uuid was already applied.

        Raises `LedgerError` (and changes nothing) for an invalid fill or one that sells more
        than the open volume: reconcile with `adopt_balances` first.
        """
        if fill.trade_uuid in self._applied:
            return None
        volume, price, funds, fee = (_dec(fill.volume), _dec(fill.price), _dec(fill.funds), _dec(fill.fee))
        if volume <= 0 or price <= 0 or funds < 0 or fee < 0:
            raise LedgerError(f"invalid fill {fill.trade_uuid}: volume/price must be > 0, funds/fee >= 0")
        pos = self.position(fill.market)
        realized: Decimal | None = None
        if fill.side is Side.BID:
            new_pos = replace(
                pos,
                volume=pos.volume + volume,
                avg_buy_price=next_avg_buy_price(pos.volume, pos.avg_buy_price, volume, price),
                cost_fees_open=pos.cost_fees_open + fee,
                fees_paid=pos.fees_paid + fee,
            )
            krw = self._krw - funds - fee
        else:
            if volume > pos.volume:
                raise LedgerError(
                    f"fill {fill.trade_uuid} sells {volume} {fill.market} but the ledger holds {pos.volume}"
                )
            remaining = pos.volume - volume
            # the last sell releases exactly what is attached, so no rounding residue survives
            fee_share = pos.cost_fees_open if remaining == 0 else pos.cost_fees_open * volume / pos.volume
            realized = funds - fee - volume * pos.avg_buy_price - fee_share
            new_pos = replace(
                pos,
                volume=remaining,
                avg_buy_price=pos.avg_buy_price if remaining else ZERO,
                cost_fees_open=pos.cost_fees_open - fee_share if remaining else ZERO,
                realized_pnl=pos.realized_pnl + realized,
                fees_paid=pos.fees_paid + fee,
            )
            krw = self._krw + funds - fee
        self._positions[fill.market] = new_pos
        self._krw = krw
        self._applied.add(fill.trade_uuid)
        return FillEffect(fill=fill, realized_pnl=realized, position=new_pos, krw_after=krw)

    def apply_fills(self, fills: Iterable[Fill]) -> list[FillEffect]:
        """Apply fills in order; the effects of the ones that were new."""
        return [e for f in fills if (e := self.apply_fill(f)) is not None]

    def adopt_balances(self, krw: Decimal, holdings: Mapping[str, tuple[Decimal, Decimal]]) -> None:
        """Reconcile with the exchange: take its KRW and its (volume, avg_buy_price) per market.

        `holdings` keys are markets (`KRW-BTC`) or currencies (`BTC`); `volume` is balance +
        locked. Markets absent from `holdings` are flat afterwards. Realized P&L and fees paid
        are kept. When a position changed, its attached buy fees are unknown and re-estimated as
        `volume × avg × fee_rate` (what Upbit charged to buy it).
        """
        self._krw = _dec(krw)
        wanted = {_market_key(k): (_dec(v), _dec(a)) for k, (v, a) in holdings.items()}
        for market in set(self._positions) | set(wanted):
            pos = self.position(market)
            volume, avg = wanted.get(market, (ZERO, ZERO))
            if volume <= 0:
                volume, avg = ZERO, ZERO
            if (volume, avg) == (pos.volume, pos.avg_buy_price):
                continue
            fees = volume * avg * self.fee_rate if volume else ZERO
            self._positions[market] = replace(pos, volume=volume, avg_buy_price=avg, cost_fees_open=fees)

    # --- persistence ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state: Decimals as strings, applied trade uuids included (sorted)."""
        return {
            "version": _STATE_VERSION,
            "krw": str(self._krw),
            "fee_rate": str(self.fee_rate),
            "positions": {
                m: {
                    "volume": str(p.volume),
                    "avg_buy_price": str(p.avg_buy_price),
                    "cost_fees_open": str(p.cost_fees_open),
                    "realized_pnl": str(p.realized_pnl),
                    "fees_paid": str(p.fees_paid),
                }
                for m, p in sorted(self._positions.items())
            },
            "applied": sorted(self._applied),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Portfolio:
        if d.get("version", _STATE_VERSION) != _STATE_VERSION:
            raise ValueError(f"unknown portfolio state version {d.get('version')!r}")
        pf = cls(krw=Decimal(d["krw"]), fee_rate=Decimal(d.get("fee_rate", str(FEE_RATE))))
        for market, p in d.get("positions", {}).items():
            pf._positions[market] = Position(
                market=market,
                volume=Decimal(p["volume"]),
                avg_buy_price=Decimal(p["avg_buy_price"]),
                cost_fees_open=Decimal(p["cost_fees_open"]),
                realized_pnl=Decimal(p["realized_pnl"]),
                fees_paid=Decimal(p["fees_paid"]),
            )
        pf._applied = set(d.get("applied", ()))
        return pf

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Portfolio):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        open_ = {m: str(p.volume) for m, p in self._positions.items() if p.volume}
        return f"Portfolio(krw={self._krw}, open={open_}, realized={self.realized_pnl_total()})"
