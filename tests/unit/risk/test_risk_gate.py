"""The risk gate: exits always pass; entries are refused or resized by each rule, with the reason."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.unit.risk.helpers import DAY, T0, buy, sell, view
from trader.risk import AllocationSpec, RiskGate, RiskSpec, StopLossGuard, TradingState

HOUR = 3_600_000


def gate(alloc: dict | None = None, state: TradingState | None = None, **rules) -> RiskGate:
    rules.setdefault("max_open_positions", 2)
    return RiskGate(RiskSpec(**rules), AllocationSpec(**alloc) if alloc else None, state)


# -- exits are never blocked -----------------------------------------------------------------

@pytest.mark.parametrize("state", list(TradingState))
@pytest.mark.parametrize("partial", [False, True])
def test_exits_pass_in_every_state(state, partial):
    g = gate(state=state, max_exposure_total=Decimal("0.1"), daily_loss_limit=Decimal("0.01"))
    g.on_equity(T0, Decimal(1_000_000))
    g.on_equity(T0 + 1, Decimal(500_000))  # daily loss lock
    v = g.check(sell(partial=partial), view(equity=500_000, positions={"KRW-BTC": 400_000}, open_=9))
    assert v.allowed and v.krw is None and v.rule is None
    assert g.refusals == []


def test_exits_pass_when_halted_by_drawdown_and_paused_by_guard():
    g = gate(max_drawdown_halt=Decimal("0.1"),
             stop_loss_guard=StopLossGuard(count=1, window_s=60, pause_s=3600))
    g.on_equity(T0, Decimal(1_000_000))
    g.on_equity(T0 + 1, Decimal(800_000))
    g.on_result(sell(), Decimal("0.01"), T0 + 2)
    assert g.state is TradingState.HALTED
    assert g.check(sell(reason="take_profit_1"), view(ts=T0 + 3, equity=800_000)).allowed


# -- trading state -----------------------------------------------------------------------------

def test_reducing_and_halted_refuse_entries_with_reason():
    g = gate(state=TradingState.REDUCING)
    v = g.check(buy(), view())
    assert (v.allowed, v.rule, v.reason) == (False, "reducing", "reducing: exits only")
    g.set_state(TradingState.HALTED, "maintenance", T0)
    v = g.check(buy(), view())
    assert (v.allowed, v.reason) == (False, "halted: maintenance")
    g.set_state(TradingState.ACTIVE, "done", T0)
    assert g.check(buy(), view()).allowed
    assert [(r.rule, r.market) for r in g.refusals] == [("reducing", "KRW-BTC"), ("halted", "KRW-BTC")]
    assert [e.detail for e in g.events] == ["halted: maintenance", "active: done"]


def test_state_from_the_file_is_the_default():
    assert gate().state is TradingState.ACTIVE
    g = RiskGate(RiskSpec(max_open_positions=1, state=TradingState.HALTED))
    assert g.state is TradingState.HALTED and not g.check(buy(), view()).allowed
    assert RiskGate(RiskSpec(max_open_positions=1, state="halted"), state=TradingState.ACTIVE).state \
        is TradingState.ACTIVE


# -- max open positions ------------------------------------------------------------------------

def test_max_open_positions_refuses_a_new_market_not_a_held_one():
    g = gate(max_open_positions=2)
    full = view(positions={"KRW-BTC": 300_000, "KRW-ETH": 300_000})
    v = g.check(buy("KRW-XRP"), full)
    assert (v.allowed, v.rule, v.reason) == (False, "max_open_positions",
                                             "max_open_positions: 2 of 2 positions open")
    assert g.check(buy("KRW-ETH"), full).allowed  # adds to a held market: no new slot
    assert g.check(buy("KRW-XRP"), view(positions={"KRW-BTC": 300_000})).allowed


def test_dust_does_not_hold_a_slot_but_buys_in_flight_count():
    g = gate(max_open_positions=1)
    assert g.check(buy("KRW-ETH"), view(positions={"KRW-BTC": 4_999})).allowed
    # a buy in flight: the caller counts it although no position is marked yet
    assert not g.check(buy("KRW-ETH"), view(positions={}, open_=1)).allowed


# -- sizing: allocation, exposure caps, free KRW -----------------------------------------------

def test_no_allocation_keeps_the_strategy_size():
    v = gate().check(buy(krw=123_456), view())
    assert v.allowed and v.krw == Decimal(123_456) and v.rule is None


def test_fixed_allocation():
    v = gate({"mode": "fixed_krw", "krw": 250_000}).check(buy(krw=1), view())
    assert v.krw == Decimal(250_000)


def test_fraction_allocation_is_of_equity_whole_won():
    g = gate({"mode": "fraction", "fraction": Decimal("0.1")})
    v = g.check(buy(), view(equity="1234567.89", free="500000", positions={"KRW-ETH": "734567.89"}))
    assert v.krw == Decimal(123_456)


def test_equal_allocation_splits_what_is_free_among_the_slots_left():
    g = gate({"mode": "equal"}, max_open_positions=4)
    # 1 of 4 open -> 3 slots; 600,000 free with the fee reserved: 600000 / 3 / 1.0005 = 199900.04
    v = g.check(buy("KRW-ETH"), view(equity=1_000_000, free=600_000, positions={"KRW-BTC": 400_000}))
    assert v.krw == Decimal(199_900)
    # last slot: all that is free, fee reserved
    v = g.check(buy("KRW-XRP"), view(free=600_000, positions={"KRW-BTC": 1, "KRW-ETH": 1}, open_=3))
    assert v.krw == Decimal(599_700) and v.krw * Decimal("1.0005") <= 600_000


def test_entry_is_capped_by_free_krw_with_fee():
    v = gate().check(buy(krw=100_000), view(free=50_000))
    assert (v.allowed, v.krw, v.rule) == (True, Decimal(49_975), "krw_free")
    v = gate().check(buy(krw=100_000), view(free=5_001))
    assert (v.allowed, v.rule) == (False, "size")


def test_exposure_per_market_shrinks_then_refuses():
    g = gate(max_exposure_per_market=Decimal("0.2"))
    v = g.check(buy(krw=100_000), view(positions={"KRW-BTC": 150_000}))
    assert (v.allowed, v.krw, v.rule) == (True, Decimal(50_000), "max_exposure_per_market")
    assert "shrunk by max_exposure_per_market" in v.reason
    v = g.check(buy(krw=100_000), view(positions={"KRW-BTC": 196_000}))
    assert (v.allowed, v.rule) == (False, "max_exposure_per_market")
    assert v.reason == "max_exposure_per_market: 4000 KRW left under the cap, below the 5000 KRW minimum"
    # another market is not held back by BTC's exposure
    assert g.check(buy("KRW-ETH", krw=100_000), view(positions={"KRW-BTC": 196_000})).krw == 100_000


def test_exposure_total_shrinks_then_refuses():
    g = gate(max_exposure_total=Decimal("0.5"), max_open_positions=5)
    v = g.check(buy("KRW-XRP"), view(positions={"KRW-BTC": 250_000, "KRW-ETH": 200_000}))
    assert (v.krw, v.rule) == (Decimal(50_000), "max_exposure_total")
    v = g.check(buy("KRW-XRP"), view(positions={"KRW-BTC": 250_000, "KRW-ETH": 249_000}))
    assert (v.allowed, v.rule) == (False, "max_exposure_total")
    v = g.check(buy("KRW-XRP"), view(positions={"KRW-BTC": 300_000, "KRW-ETH": 300_000}))
    assert (v.allowed, v.rule) == (False, "max_exposure_total")
    assert "0 KRW left" in v.reason


def test_tighter_cap_wins():
    g = gate(max_exposure_per_market=Decimal("0.3"), max_exposure_total=Decimal("0.5"))
    v = g.check(buy(krw=500_000), view(positions={"KRW-BTC": 100_000, "KRW-ETH": 300_000}))
    assert (v.krw, v.rule) == (Decimal(100_000), "max_exposure_total")
    v = g.check(buy(krw=500_000), view(positions={"KRW-BTC": 250_000}))
    assert (v.krw, v.rule) == (Decimal(50_000), "max_exposure_per_market")


# -- daily loss limit --------------------------------------------------------------------------

def test_daily_loss_blocks_until_the_next_0900_kst_and_not_longer():
    g = gate(daily_loss_limit=Decimal("0.03"))
    g.on_equity(T0 + HOUR, Decimal(1_000_000))  # the day's first mark: 10:00 KST
    g.on_equity(T0 + 2 * HOUR, Decimal(975_000))  # -2.5 %: still allowed
    assert g.check(buy(), view(ts=T0 + 2 * HOUR, equity=975_000)).allowed
    g.on_equity(T0 + 3 * HOUR, Decimal(970_000))  # -3 %: locked
    v = g.check(buy(), view(ts=T0 + 3 * HOUR, equity=990_000))
    assert (v.allowed, v.rule) == (False, "daily_loss_limit")
    assert v.reason.endswith("entries resume at 2024-10-05 09:00:00 KST")
    # recovering during the day does not lift it; one millisecond before 09:00 KST still refused
    assert not g.check(buy(), view(ts=T0 + DAY - 1, equity=1_100_000)).allowed
    # from 09:00 KST the new day starts with its own equity
    assert g.check(buy(), view(ts=T0 + DAY, equity=970_000)).allowed
    assert [e.rule for e in g.events] == ["daily_loss_limit"]


def test_daily_loss_day_start_is_the_first_mark_of_the_day():
    g = gate(daily_loss_limit=Decimal("0.05"))
    g.on_equity(T0 - 1, Decimal(2_000_000))  # 08:59:59.999 KST: yesterday
    g.on_equity(T0, Decimal(1_000_000))  # today's start
    assert g.check(buy(), view(ts=T0 + 1, equity=960_000)).allowed
    assert not g.check(buy(), view(ts=T0 + 2, equity=950_000)).allowed


def test_the_gate_marks_equity_from_the_views_it_checks():
    g = gate(daily_loss_limit=Decimal("0.1"))
    assert g.check(buy(), view(ts=T0, equity=1_000_000)).allowed
    assert not g.check(buy(), view(ts=T0 + 5, equity=900_000)).allowed


# -- drawdown halt -----------------------------------------------------------------------------

def test_drawdown_halt_stays_until_reset():
    g = gate(max_drawdown_halt=Decimal("0.2"))
    for ts, eq in ((T0, 1_000_000), (T0 + 1, 1_250_000), (T0 + 2, 1_010_000)):
        g.on_equity(ts, Decimal(eq))
    assert g.state is TradingState.ACTIVE  # 19.2 % below the peak
    g.on_equity(T0 + 3, Decimal(1_000_000))  # 20 %
    assert g.state is TradingState.HALTED
    v = g.check(buy(), view(ts=T0 + 4 * DAY, equity=2_000_000))  # days later, equity recovered
    assert (v.allowed, v.rule) == (False, "halted")
    assert v.reason == "halted: max_drawdown_halt: equity 20.00 % below its peak (limit 20.00 %)"
    g.set_state(TradingState.ACTIVE, "reviewed", T0 + 4 * DAY)
    # the peak is re-armed from the next mark, so the old peak does not halt again at once
    assert g.check(buy(), view(ts=T0 + 4 * DAY + 1, equity=900_000)).allowed
    g.on_equity(T0 + 4 * DAY + 2, Decimal(719_999))
    assert g.state is TradingState.HALTED


# -- stop-loss guard -------------------------------------------------------------------------

def test_global_stop_loss_guard_pauses_all_markets():
    g = gate(stop_loss_guard=StopLossGuard(count=2, window_s=3600, pause_s=7200))
    g.on_result(sell("KRW-BTC"), Decimal(1), T0)
    assert g.check(buy("KRW-ETH"), view(ts=T0 + 1)).allowed
    g.on_result(sell("KRW-ETH", reason="sharp_drop"), Decimal(1), T0 + HOUR - 1)
    v = g.check(buy("KRW-XRP"), view(ts=T0 + HOUR))
    assert (v.allowed, v.rule) == (False, "stop_loss_guard")
    assert v.reason == "stop_loss_guard: paused after stop-losses until 2024-10-04 11:59:59 KST"
    assert not g.check(buy("KRW-BTC"), view(ts=T0 + 3 * HOUR - 2)).allowed
    assert g.check(buy("KRW-BTC"), view(ts=T0 + 3 * HOUR - 1)).allowed


def test_stop_losses_outside_the_window_do_not_count():
    g = gate(stop_loss_guard=StopLossGuard(count=2, window_s=3600, pause_s=7200))
    g.on_result(sell(), Decimal(1), T0)
    g.on_result(sell(), Decimal(1), T0 + HOUR)  # exactly one window later: the first has left it
    assert g.check(buy(), view(ts=T0 + HOUR + 1)).allowed


def test_per_market_guard_pauses_only_that_market():
    g = gate(stop_loss_guard=StopLossGuard(count=2, window_s=3600, per_market=True, pause_s=600))
    g.on_result(sell("KRW-BTC"), Decimal(1), T0)
    g.on_result(sell("KRW-ETH"), Decimal(1), T0 + 1)
    assert g.check(buy("KRW-BTC"), view(ts=T0 + 2)).allowed  # one each: no pause
    g.on_result(sell("KRW-BTC"), Decimal(1), T0 + 3)
    assert not g.check(buy("KRW-BTC"), view(ts=T0 + 4)).allowed
    assert g.check(buy("KRW-ETH"), view(ts=T0 + 4)).allowed
    assert g.check(buy("KRW-BTC"), view(ts=T0 + 3 + 600_000)).allowed


def test_guard_counts_only_filled_stop_exits_once_each():
    g = gate(stop_loss_guard=StopLossGuard(count=2, window_s=3600, pause_s=600))
    g.on_result(sell(reason="take_profit_1"), Decimal(1), T0)
    g.on_result(sell(reason="trailing_stop"), Decimal(1), T0)
    g.on_result(sell(), Decimal(0), T0)  # nothing filled
    g.on_result(buy(), Decimal(1), T0)
    once = sell(intent_id="same")
    g.on_result(once, Decimal("0.5"), T0)
    g.on_result(once, Decimal("0.5"), T0 + 1)  # the rest of the same exit
    assert g.check(buy(), view(ts=T0 + 2)).allowed
    g.on_result(sell(), Decimal(1), T0 + 3)
    assert not g.check(buy(), view(ts=T0 + 4)).allowed


def test_a_pause_uses_up_its_stop_losses():
    g = gate(stop_loss_guard=StopLossGuard(count=2, window_s=86_400, pause_s=60))
    g.on_result(sell(), Decimal(1), T0)
    g.on_result(sell(), Decimal(1), T0 + 1)
    g.on_result(sell(), Decimal(1), T0 + 120_000)  # after the pause: one new stop, no new pause
    assert g.check(buy(), view(ts=T0 + 120_001)).allowed
    assert [e.rule for e in g.events] == ["stop_loss_guard"]


# -- refusals, determinism, state --------------------------------------------------------------

def test_refusals_are_recorded_with_reason():
    g = gate(max_open_positions=1)
    i = buy("KRW-ETH", ts=T0 + 7)
    g.check(i, view(ts=T0 + 7, positions={"KRW-BTC": 100_000}))
    (r,) = g.refusals
    assert (r.ts_ms, r.market, r.rule, r.intent_id) == (T0 + 7, "KRW-ETH", "max_open_positions", i.intent_id)
    assert r.reason == "1 of 1 positions open"


def _busy_gate() -> RiskGate:
    g = gate(daily_loss_limit=Decimal("0.02"), max_drawdown_halt=Decimal("0.5"),
             stop_loss_guard=StopLossGuard(count=3, window_s=3600, per_market=True, pause_s=600))
    g.on_equity(T0, Decimal("1000000.5"))
    g.on_equity(T0 + 1, Decimal(1_100_000))
    g.on_equity(T0 + 2, Decimal(970_000))
    g.on_result(sell("KRW-BTC"), Decimal(1), T0 + 3)
    for k in range(3):
        g.on_result(sell("KRW-ETH"), Decimal(1), T0 + 4 + k)
    g.set_state(TradingState.REDUCING, "user", T0 + 9)
    return g


def test_state_round_trip_through_json():
    g = _busy_gate()
    d = json.loads(json.dumps(g.state_dict()))
    again = gate(daily_loss_limit=Decimal("0.02"), max_drawdown_halt=Decimal("0.5"),
                 stop_loss_guard=StopLossGuard(count=3, window_s=3600, per_market=True, pause_s=600))
    again.load_state(d)
    assert again.state_dict() == g.state_dict()
    assert again.state is TradingState.REDUCING
    assert d["day_start"] == "1000000.5" and d["daily_lock_until"] == T0 + DAY
    assert d["pauses"] == {"KRW-ETH": T0 + 6 + 600_000} and d["stops"] == [[T0 + 3, "KRW-BTC"]]
    # the restored gate decides as the original does
    for market in ("KRW-BTC", "KRW-ETH"):
        for ts in (T0 + 10, T0 + DAY + 10):
            assert again.check(buy(market), view(ts=ts)) == g.check(buy(market), view(ts=ts))


def test_load_state_refuses_another_version():
    with pytest.raises(ValueError, match="version"):
        gate().load_state({"version": 99})


def test_same_inputs_same_verdicts():
    def run() -> list:
        g = gate({"mode": "equal"}, max_exposure_total=Decimal("0.6"), daily_loss_limit=Decimal("0.05"))
        out = []
        for k in range(50):
            eq = 1_000_000 - 3_000 * k
            out.append(g.check(buy(f"KRW-M{k % 4}"), view(ts=T0 + k * HOUR, equity=eq,
                                                          positions={"KRW-M0": 100_000 + k})))
        return [(v.allowed, v.reason, v.krw) for v in out]
    assert run() == run()


def test_equal_allocation_adding_to_a_held_market_keeps_its_own_slot():
    g = gate({"mode": "equal"}, max_open_positions=2)
    # BTC holds one of 2 slots; adding to BTC: 2 - (2 open - BTC's own) = 1 slot... of what is free
    v = g.check(buy("KRW-BTC"), view(free=400_000, positions={"KRW-BTC": 300_000, "KRW-ETH": 300_000}))
    assert v.krw == Decimal(399_800)
    v = g.check(buy("KRW-BTC"), view(free=400_000, positions={"KRW-BTC": 300_000}))
    assert v.krw == Decimal(199_900)
