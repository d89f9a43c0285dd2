"""Lockstep: the simulator pauses on a decision and resumes (at the right pace) when idle."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from flows.lockstep import SimLockstep, only_resting_limits
from trader.sim.server import SimulatorThread


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(speed=50.0) as s:
        yield s


async def _state(sim: SimulatorThread) -> dict:
    return await asyncio.to_thread(sim.control.state)


async def _until(sim: SimulatorThread, pred: Callable[[dict], bool], timeout_s: float = 5.0) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        state = await _state(sim)
        if pred(state) or asyncio.get_running_loop().time() > deadline:
            return state
        await asyncio.sleep(0.02)


async def test_pauses_while_busy_and_resumes_at_the_resting_pace_then_full_speed(
    sim: SimulatorThread,
) -> None:
    busy = {"inflight": True, "resting": False}
    lock = SimLockstep(
        sim.base_url,
        idle=lambda: not busy["inflight"] or busy["resting"],
        waiting=lambda: busy["inflight"],
        speed="max",
        resting_speed=10.0,
    )
    try:
        lock.pause()
        assert (await _until(sim, lambda s: s["paused"]))["paused"]
        await asyncio.sleep(0.1)
        assert (await _state(sim))["paused"]  # still busy: stays paused
        busy["resting"] = True  # only a resting limit order left: the market must move
        state = await _until(sim, lambda s: not s["paused"])
        assert not state["paused"] and state["speed"] == 10.0
        busy["inflight"] = False
        assert (await _until(sim, lambda s: s["speed"] == "max"))["speed"] == "max"
        assert lock.pauses == 1
    finally:
        await lock.close()


class _Order:
    def __init__(self, ord_type: str, uuid: str | None) -> None:
        self.ord_type, self.uuid = ord_type, uuid


class _Loop:
    def __init__(self, inflight: dict, orders: list[_Order]) -> None:
        self.inflight = inflight
        self.om = type("OM", (), {"open_orders": orders})()


def test_only_resting_limits() -> None:
    assert only_resting_limits(_Loop({}, []))
    assert only_resting_limits(_Loop({"i": 1}, [_Order("limit", "u1")]))
    assert not only_resting_limits(_Loop({"i": 1}, [_Order("limit", None)]))  # not acknowledged yet
    assert not only_resting_limits(_Loop({"i": 1}, [_Order("market", "u1")]))
    assert not only_resting_limits(_Loop({"i": 1}, []))  # between orders / confirming
