"""Indicators: bulk `advance` leaves exactly the state per-tick `update` leaves."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from trader.strategy.indicators import DAY_MS, CandleMAs, DailyCandle, WindowMax


def _path(draw_steps: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    ts = np.cumsum([dt for dt, _ in draw_steps]).astype(np.int64) + 1_704_067_200_000
    px = np.array([float(p) for _, p in draw_steps])
    return ts, px


steps = st.lists(st.tuples(st.integers(0, 4 * 3_600_000), st.integers(90, 110)), min_size=2, max_size=60)


def _make():
    return [WindowMax(600_000), CandleMAs(900_000, (2, 3)), DailyCandle()]


@settings(max_examples=150, deadline=None)
@given(steps, st.data())
def test_advance_equals_updates(path, data):
    ts, px = _path(path)
    cut = data.draw(st.integers(0, len(ts)))
    cut2 = data.draw(st.integers(cut, len(ts)))
    one, bulk = _make(), _make()
    for t, p in zip(ts.tolist(), px.tolist(), strict=True):
        for ind in one:
            ind.update(t, p)
    for t, p in zip(ts[:cut].tolist(), px[:cut].tolist(), strict=True):
        for ind in bulk:
            ind.update(t, p)
    for ind in bulk:
        ind.advance(ts[cut:cut2], px[cut:cut2])
    for t, p in zip(ts[cut2:].tolist(), px[cut2:].tolist(), strict=True):
        for ind in bulk:
            ind.update(t, p)
    for a, b in zip(one, bulk, strict=True):
        assert a.to_state() == b.to_state()
    assert one[1].mas() == bulk[1].mas()


def test_window_max_expires_old_highs():
    w = WindowMax(60_000)
    assert w.update(0, 100.0) == 100.0
    assert w.update(30_000, 90.0) == 100.0
    assert w.update(60_000, 95.0) == 95.0  # the 100 at t=0 left the window (now − 60 s, now]


def test_daily_candle_rolls_at_utc_midnight():
    d = DailyCandle()
    for t, p in [(0, 100.0), (1, 110.0), (2, 95.0), (DAY_MS, 105.0)]:
        d.update(t, p)
    assert (d.prev_high, d.prev_low, d.open) == (110.0, 95.0, 105.0)
