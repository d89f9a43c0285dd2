"""Walk-forward windows: rolling and anchored bounds, spans, a period too short."""

from __future__ import annotations

import pytest

from trader.optimize.walkforward import kst_text, parse_span, parse_walk_forward, windows

DAY = 86_400_000
T0 = 1_704_034_800_000  # 2024-01-01 00:00 KST


def test_rolling_windows():
    ws = windows(T0, T0 + 100 * DAY, 30 * 86400, 10 * 86400, 10 * 86400, anchored=False)
    assert len(ws) == 7  # test windows end at day 40, 50, ..., 100
    assert [(w.train_start - T0) // DAY for w in ws] == [0, 10, 20, 30, 40, 50, 60]
    assert all(w.train_end - w.train_start == 30 * DAY and w.test_start == w.train_end for w in ws)
    assert ws[-1].test_end == T0 + 100 * DAY


def test_anchored_windows_grow():
    ws = windows(T0, T0 + 95 * DAY, 30 * 86400, 20 * 86400, 15 * 86400, anchored=True)
    assert [w.train_start for w in ws] == [T0, T0, T0, T0]
    assert [(w.train_end - T0) // DAY for w in ws] == [30, 45, 60, 75]
    assert [(w.test_end - T0) // DAY for w in ws] == [50, 65, 80, 95]


def test_period_too_short():
    with pytest.raises(ValueError, match="shorter than train \\+ test"):
        windows(T0, T0 + 30 * DAY, 30 * 86400, 10 * 86400, 10 * 86400)


def test_spans_and_kst_text():
    assert parse_walk_forward("90d:30d") == (90 * 86400, 30 * 86400, 30 * 86400)
    assert parse_walk_forward("90d:30d:2w") == (90 * 86400, 30 * 86400, 14 * 86400)
    assert parse_span("12h") == 43_200
    for bad in ("90d", "90x:30d", "0d:30d", "a:b:c:d"):
        with pytest.raises(ValueError):
            parse_walk_forward(bad)
    assert kst_text(T0) == "2024-01-01T00:00:00+09:00"
    assert kst_text(T0 + 1) == "2024-01-01T00:00:00.001+09:00"
    assert windows(T0, T0 + 40 * DAY, 30 * 86400, 10 * 86400, 10 * 86400)[0].to_dict()["test"] == \
        {"start": "2024-01-31T00:00:00+09:00", "end": "2024-02-10T00:00:00+09:00"}
