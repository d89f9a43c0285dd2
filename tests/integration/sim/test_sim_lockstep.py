"""Simulator lockstep mode: one trade per ack (REST /_sim/ack or "ACK <seq>" on the public socket),
stale acks ignored, a silent client released by the ack timeout, and the control refused when off."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import websockets

from trader.sim.server import SimulatorThread


def _wait(cond: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_sim_lockstep_rest_ack_releases_one_trade_at_a_time() -> None:
    with SimulatorThread(speed=None, lockstep=True, ack_timeout_s=0.5, rate_limit=False) as sim:
        ctl = sim.control
        time.sleep(0.3)
        st = ctl.state()
        assert st["applied"] == 1 and st["lockstep"]["waiting"]  # primed trade only: no client yet
        sid = sim.sim.feed.stats[sim.market].last_sid
        r = httpx.post(f"{sim.base_url}/_sim/ack", json={"seq": sid})
        assert r.status_code == 200 and r.json()["released"] is True
        _wait(lambda: ctl.state()["applied"] == 2)
        r = httpx.post(f"{sim.base_url}/_sim/ack", json={"seq": sid})  # the old trade again
        assert r.json()["released"] is False
        # nobody acks trade 2: the timeout releases it once, then the feed waits for a client
        _wait(lambda: ctl.state()["lockstep"]["timeouts"] == 1)
        time.sleep(0.8)
        st = ctl.state()
        assert st["applied"] == 3 and st["lockstep"]["timeouts"] == 1 and not st["lockstep"]["client"]


def test_sim_ack_refused_without_lockstep() -> None:
    with SimulatorThread(speed=None, paused=True, rate_limit=False) as sim:
        r = httpx.post(f"{sim.base_url}/_sim/ack", json={})
        assert r.status_code == 409
        assert "lockstep" not in sim.control.state()


async def test_sim_lockstep_ws_ack_frames() -> None:
    with SimulatorThread(speed=None, lockstep=True, rate_limit=False) as sim:
        async with websockets.connect(sim.ws_url) as ws:
            await ws.send(orjson.dumps([{"ticket": "t"}, {"type": "trade", "codes": [sim.market]}]).decode())
            first = orjson.loads(await ws.recv())  # the snapshot of the primed trade
            assert first["stream_type"] == "SNAPSHOT"
            seen = [first["sequential_id"]]
            for _ in range(5):
                await ws.send(f"ACK {seen[-1]}")
                msg = orjson.loads(await ws.recv())
                assert msg["stream_type"] == "REALTIME"
                seen.append(msg["sequential_id"])
            assert seen == sorted(set(seen))
            assert sim.sim.feed.applied == 6  # exactly one trade per ack
