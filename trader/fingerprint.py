"""The fingerprint of a run: sha256 over its fills, in order — Jesse's guard that a faster or
refactored engine still makes exactly the same trades.

One definition for every mode: the backtest computes it over its fill records, a paper run over
the fills in its database, and the golden-results file pins it for the shipped examples. A fill
counts with its market time, side, price, volume, fee, the rule that decided it and the intent id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, Protocol


class FingerprintFill(Protocol):
    ts_ms: int
    side: Any  # "bid"/"ask" or trader.domain.Side (a StrEnum: the same text)
    price: Any
    volume: Any
    fee: Any
    reason: str
    intent_id: str


def fill_line(f: FingerprintFill) -> str:
    """One fill's line in the fingerprint (Decimals as their exact text)."""
    return f"{f.ts_ms}|{f.side}|{f.price}|{f.volume}|{f.fee}|{f.reason}|{f.intent_id}\n"


def fingerprint(fills: Iterable[FingerprintFill]) -> str:
    """sha256 hex digest over the fills; print its first 16 characters to users."""
    h = hashlib.sha256()
    for f in fills:
        h.update(fill_line(f).encode())
    return h.hexdigest()
