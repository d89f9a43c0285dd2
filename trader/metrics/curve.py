"""Equity-curve figures: step lookups, return, drawdown (negative %), exposure, day boundaries.

numpy throughout: a year of 1-minute marks (525,600 values) costs milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import numpy as np

DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
_KST_OFFSET_H = 9


def step_at(event_ts: np.ndarray, values_after: np.ndarray, grid: np.ndarray, initial: float) -> np.ndarray:
    """The value after the last event at or before each grid instant (`initial` before any)."""
    if len(event_ts) == 0:
        return np.full(np.shape(grid), float(initial))
    idx = np.searchsorted(event_ts, grid, side="right") - 1
    return np.where(idx >= 0, np.asarray(values_after, dtype=np.float64)[np.maximum(idx, 0)], float(initial))


def return_pct(start: Decimal | float, end: Decimal | float) -> float:
    """(end − start) / start × 100; 0 when the start is 0."""
    if not start:
        return 0.0
    return float((end - start) / start * 100)  # type: ignore[operator]


def drawdown(values: np.ndarray) -> tuple[float, float]:
    """(max drawdown % ≤ 0, the same fall in KRW ≥ 0) of an equity series in time order."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return 0.0, 0.0
    peak = np.maximum.accumulate(v)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, v / peak - 1.0, 0.0)
    return min(float(dd.min()) * 100, 0.0), max(float((peak - v).max()), 0.0)


def exposure_pct(intervals: Iterable[tuple[int, int | None]], start: int, end: int) -> float:
    """Share of [start, end) covered by at least one (open_ms, close_ms or None = still open)."""
    if end <= start:
        return 0.0
    spans = sorted(
        (max(a, start), end if b is None else min(b, end))
        for a, b in intervals
        if a < end and (b is None or b > start)
    )
    covered, cursor = 0, start
    for a, b in spans:
        a = max(a, cursor)
        if b > a:
            covered += b - a
            cursor = b
    return covered / (end - start) * 100


def day_boundaries(start_ms: int, end_ms: int, day_start_hour: int = 9) -> np.ndarray:
    """Every trading-day start (`day_start_hour`:00 KST) in [start_ms, end_ms], as UTC epoch ms."""
    phase = (day_start_hour - _KST_OFFSET_H) * _HOUR_MS % DAY_MS  # 09:00 KST = 00:00 UTC
    first = start_ms + (phase - start_ms) % DAY_MS
    if first > end_ms:
        return np.empty(0, dtype=np.int64)
    return np.arange(first, end_ms + 1, DAY_MS, dtype=np.int64)
