"""The fingerprint of a run: sha256 over its fills, in order — Jesse's guard that a faster or
refactored engine still makes exactly the same trades.

One definition for every mode: the backtest computes it over its fill records, a paper run over
the fills in its database, and the golden-results file pins it for the shipped examples. A fill
counts with its market time (ms), side, price, volume, fee, the rule that decided it and the intent id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, Protocol

from trader.upbit.rules import format_decimal


class FingerprintFill(Protocol):
    ts_ms: int
    side: Any  # "bid"/"ask" or trader.domain.Side (a StrEnum: the same text)
    price: Any
    volume: Any
    fee: Any
    reason: str
    intent_id: str


def fill_line(f: FingerprintFill) -> str:
    """One fill's line in the fingerprint. Numbers are canonical fixed-point text, so a fill read
    back from a database or an exchange's JSON ("3050000", "3050000.0", "3.05E+6") counts the same
    as the backtest's own Decimal."""
    return (f"{int(f.ts_ms)}|{f.side}|{format_decimal(f.price)}|{format_decimal(f.volume)}|"
            f"{format_decimal(f.fee)}|{f.reason}|{f.intent_id}\n")


def fingerprint(fills: Iterable[FingerprintFill]) -> str:
    """sha256 hex digest over the fills; print its first 16 characters to users."""
    h = hashlib.sha256()
    for f in fills:
        h.update(fill_line(f).encode())
    return h.hexdigest()
