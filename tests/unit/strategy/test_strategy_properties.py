"""Hypothesis properties of the engine: determinism, never oversells, silent while pending,
restore-anywhere, ids unique across a state reset, and skipping quiet trades (quiet + advance)
changes nothing."""

from __future__ import annotations

import json
from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.strategy.helpers import MARKET, T0, Book, make_config
from trader.domain import IntentKind, Tick
from trader.strategy.engine import StrategyEngine

CONFIGS = [
    make_config(entry={"immediate": True},
                exits={"take_profit": [{"gain": 0.01, "sell": 0.3}, {"gain": 0.02, "sell": 0.3}],
                       "stop_loss": 0.02, "trailing_stop": {"activate_at": 0.01, "trail": 0.005},
                       "sharp_drop": {"drop": 0.015, "within_s": 30}},
                cooldown={"after_sell_s": 20, "after_stop_loss_s": 60}),
    make_config(entry={"volatility_breakout": {"k": 0.3}, "trend_filter": {"ma": 3, "interval": "1m"}},
                exits={"take_profit": [{"gain": 0.01, "sell": 0.5}],
                       "reversal": {"min_gain": 0.0, "fast_ma": 2, "slow_ma": 4, "interval": "1m"},
                       "max_hold_s": 600, "trailing_stop": {"activate_at": 0.0, "trail": 0.01}},
                cooldown={"max_entries_per_day": 3}, order_krw=30_000),
    make_config(entry={"dip": {"drop": 0.01, "lookback_s": 120}},
                exits={"take_profit": [{"gain": 0.005, "sell": 0.2}, {"gain": 0.01, "sell": 0.2}],
                       "stop_loss": 0.01, "sharp_drop": {"drop": 0.01, "within_s": 60}},
                order_fraction=0.3),
]

# random walks in 1,000-won ticks around 100 M, with irregular gaps (some cross days)
walks = st.lists(st.tuples(st.integers(-400, 400), st.sampled_from([1, 5, 20, 61, 600, 7200, 40000])),
                 min_size=5, max_size=150)


def _ticks(walk) -> tuple[np.ndarray, np.ndarray]:
    px = (100_000 + np.cumsum([d for d, _ in walk])).astype(np.float64) * 1000.0
    ts = T0 + np.cumsum([g * 1000 for _, g in walk]).astype(np.int64)
    return ts, px


def _drive(cfg, ts, px, *, skip=False, restart_at=None, pending_mask=None, reset_at=None):
    eng = StrategyEngine(cfg)
    book = Book()
    out = []
    i, n = 0, len(ts)
    while i < n:
        if restart_at is not None and i == restart_at:
            eng = StrategyEngine.from_state(cfg, json.loads(json.dumps(eng.state_dict())))
        if reset_at is not None and i == reset_at:
            eng = StrategyEngine(cfg)  # the state is lost: start fresh on the same ledger
        if skip:
            lo, hi, until = eng.quiet(book.view())
            j = i
            while j < n and lo < px[j] < hi and ts[j] < until and j != restart_at:
                j += 1
            if j > i:
                eng.advance(ts[i:j], px[i:j])
                i = j
                continue
        t, p = int(ts[i]), float(px[i])
        pending = bool(pending_mask[i]) if pending_mask is not None else False
        view = book.view(pending)
        intents = eng.on_tick(Tick(MARKET, t, p, 1.0), view)
        assert len(intents) <= 1
        if pending:
            assert intents == []
        for it in intents:
            if it.kind is not IntentKind.BUY:
                assert Decimal(0) < it.volume <= book.volume
            else:
                assert it.krw * Decimal("1.0005") <= book.krw
            vol, fill_px = book.execute(it, p, t)
            eng.on_order_result(it, vol, fill_px, t)
            out.append((it.intent_id, it.kind.value, str(it.volume), str(it.krw), str(it.limit_price), t))
        i += 1
    return out, eng.state_dict()


@settings(max_examples=60, deadline=None)
@given(walks, st.sampled_from(range(len(CONFIGS))))
def test_deterministic_and_skipping_changes_nothing(walk, ci):
    ts, px = _ticks(walk)
    a, state_a = _drive(CONFIGS[ci], ts, px)
    b, state_b = _drive(CONFIGS[ci], ts, px)
    assert a == b and state_a == state_b
    c, state_c = _drive(CONFIGS[ci], ts, px, skip=True)
    assert c == a
    assert state_c == state_a


@settings(max_examples=60, deadline=None)
@given(walks, st.sampled_from(range(len(CONFIGS))), st.data())
def test_restore_at_any_point_gives_the_same_future(walk, ci, data):
    ts, px = _ticks(walk)
    cut = data.draw(st.integers(0, len(ts) - 1))
    assert _drive(CONFIGS[ci], ts, px, restart_at=cut) == _drive(CONFIGS[ci], ts, px)


@settings(max_examples=60, deadline=None)
@given(walks, st.sampled_from(range(len(CONFIGS))), st.data())
def test_ids_never_repeat_even_after_a_state_reset(walk, ci, data):
    ts, px = _ticks(walk)
    cut = data.draw(st.integers(0, len(ts) - 1))
    ids = [d[0] for d in _drive(CONFIGS[ci], ts, px, reset_at=cut)[0]]
    assert len(ids) == len(set(ids))


@settings(max_examples=40, deadline=None)
@given(walks, st.sampled_from(range(len(CONFIGS))), st.data())
def test_never_emits_while_pending(walk, ci, data):
    ts, px = _ticks(walk)
    mask = data.draw(st.lists(st.booleans(), min_size=len(ts), max_size=len(ts)))
    _drive(CONFIGS[ci], ts, px, pending_mask=mask)  # asserts inside
