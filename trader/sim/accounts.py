"""Per-currency balances of the simulated account: free balance, locked funds, average buy price.

`avg_buy_price` follows Upbit: volume-weighted over buy fills, fees excluded, unchanged by sells,
reset when the coin position (balance + locked) reaches zero. A row is listed only while it holds
something (the KRW row always).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from trader.upbit.rules import format_decimal

D0 = Decimal(0)


@dataclass(slots=True)
class Account:
    currency: str
    balance: Decimal = D0
    locked: Decimal = D0
    avg_buy_price: Decimal = D0

    @property
    def total(self) -> Decimal:
        return self.balance + self.locked

    def to_json(self) -> dict:
        return {
            "currency": self.currency,
            "balance": format_decimal(self.balance),
            "locked": format_decimal(self.locked),
            "avg_buy_price": "0" if not self.avg_buy_price else format_decimal(self.avg_buy_price),
            "avg_buy_price_modified": False,
            "unit_currency": "KRW",
        }


class Accounts:
    """The account book: every mutation of balances goes through these few methods."""

    def __init__(self, krw: Decimal) -> None:
        self._rows: dict[str, Account] = {"KRW": Account("KRW", Decimal(krw))}

    def get(self, currency: str) -> Account:
        row = self._rows.get(currency)
        if row is None:
            row = self._rows[currency] = Account(currency)
        return row

    def peek(self, currency: str) -> Account | None:
        return self._rows.get(currency)

    def lock(self, currency: str, amount: Decimal) -> None:
        row = self.get(currency)
        row.balance -= amount
        row.locked += amount

    def unlock(self, currency: str, amount: Decimal) -> None:
        row = self.get(currency)
        row.locked -= amount
        row.balance += amount

    def on_buy_fill(self, coin: str, price: Decimal, volume: Decimal, spent_from_lock: Decimal) -> None:
        krw = self.get("KRW")
        krw.locked -= spent_from_lock
        row = self.get(coin)
        held = row.total
        row.avg_buy_price = (row.avg_buy_price * held + price * volume) / (held + volume)
        row.balance += volume

    def on_sell_fill(self, coin: str, volume: Decimal, proceeds: Decimal) -> None:
        row = self.get(coin)
        row.locked -= volume
        if row.total == 0:
            row.avg_buy_price = D0
        self.get("KRW").balance += proceeds

    def fund(self, currency: str, amount: Decimal, avg_buy_price: Decimal | None = None) -> None:
        row = self.get(currency)
        if avg_buy_price is not None and currency != "KRW":
            held = row.total
            total = held + amount
            row.avg_buy_price = (row.avg_buy_price * held + avg_buy_price * amount) / total if total else D0
        row.balance += amount

    def rows(self) -> list[Account]:
        return [r for c, r in self._rows.items() if c == "KRW" or r.balance or r.locked]

    def to_json(self) -> list[dict]:
        return [r.to_json() for r in self.rows()]
