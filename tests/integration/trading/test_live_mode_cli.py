"""The LIVE path of `python -m trader run` (no `--paper`), end to end over loopback.

A simulator subprocess stands in for Upbit, started with API keys of its own (not the
simulator's development keys), replaying the shipped KRW-ETH data fast. The trader is started
the way a user starts it live: `python -m trader run --strategy FILE` with the keys in
`UPBIT_ACCESS_KEY`/`UPBIT_SECRET_KEY`, the exchange in `TRADER_UPBIT_BASE_URL`/
`TRADER_UPBIT_WS_URL`, the ledger in `TRADER_DATABASE_URL` — and no `--paper`, `--sim-url` or
`--db`, so the live branch of `resolve_venue`/`_db_url` is what runs. It is stopped by SIGTERM
once it has traded; then the database is checked against the exchange's own REST answers
(orders, trades, balances) and every file and output is searched for the keys. A second test
gives a wrong secret (or access key) and expects a fast, clear, key-free refusal; a third shows
that simulator options without `--paper` are refused instead of silently trading live.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from trader.domain import OrderSnapshot, OrderState, OrdType
from trader.execution.reconcile import compare, load_meta, rebuild_ledger
from trader.sim.server import SimulatorProcess
from trader.storage.db import Database
from trader.storage.repository import Repository
from trader.upbit.client import Balance
from trader.upbit.rest import UpbitRestClient

REPO_ROOT = Path(__file__).resolve().parents[3]

# Trades within seconds on the real 15-minute ETH candles replayed at 3000× (a candle every
# 0.3 s): enter at once, leave on ±0.3 %, no cooldown.
STRATEGY = """\
market: KRW-ETH
order_krw: 100000
entry: {immediate: true}
exits:
  take_profit: [{gain: 0.003, sell: 1.0}]
  stop_loss: 0.003
"""
SIM_ARGS = ["--speed", "3000", "--krw", "1000000", "--start", "2024-01-02T09:00"]
MIN_ORDERS = 4  # two round trips before the SIGTERM


def _keys() -> tuple[str, str]:
    """Fresh, recognisable keys: a hit in any output or file can only be a leak."""
    return f"live-ak-{secrets.token_hex(12)}", f"live-sk-{secrets.token_hex(20)}"


def _live_env(sim: SimulatorProcess, tmp_path: Path, access_key: str, secret_key: str) -> dict[str, str]:
    """The environment of a user trading live, with nothing inherited that could redirect it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADER_", "UPBIT_"))}
    env.update(
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(REPO_ROOT),
        UPBIT_ACCESS_KEY=access_key,
        UPBIT_SECRET_KEY=secret_key,
        TRADER_UPBIT_BASE_URL=sim.base_url,
        TRADER_UPBIT_WS_URL=sim.ws_url,
        TRADER_DATABASE_URL=f"sqlite:///{tmp_path / 'live.db'}",
        TRADER_VAR_DIR=str(tmp_path / "var"),
    )
    return env


def _trader(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    # cwd is the test's directory: no .env of the checkout, and var/ cannot land in the repo
    return subprocess.Popen(
        [sys.executable, "-m", "trader", *args], cwd=cwd, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


async def _exchange_view(sim: SimulatorProcess, ak: str, sk: str, market: str) -> dict[str, Any]:
    """What the exchange itself says: closed orders with their trades, open orders, balances."""
    async with UpbitRestClient(ak, sk, sim.base_url) as rest:
        closed = await rest.closed_orders(market)
        detailed = [await rest.get_order(uuid=o.uuid) for o in closed]
        return {
            "closed": detailed,
            "open": await rest.open_orders(market),
            "balances": await rest.accounts(),
        }


def _local_state(o: OrderSnapshot) -> str:
    """The state our database keeps for a final exchange order: a market order that executed and
    ended `cancel` (a market buy's dust, as on Upbit) counts as done (trader/execution/states.py)."""
    if o.state is OrderState.DONE or (o.ord_type is not OrdType.LIMIT and o.executed_volume > 0):
        return "done"
    return o.state.value


def _closed_count(sim: SimulatorProcess, ak: str, sk: str, market: str) -> int:
    async def count() -> int:
        async with UpbitRestClient(ak, sk, sim.base_url) as rest:
            return len(await rest.closed_orders(market))

    return asyncio.run(count())


def _assert_no_keys_anywhere(texts: list[str], root: Path, *keys: str, control: bytes) -> None:
    """No key in the outputs, nor anywhere in the files under `root` (the database and its WAL);
    `control` is something the files do hold, proving the search reads their content."""
    for key in keys:
        for text in texts:
            assert key not in text, "a key appeared in the trader's output"
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix != ".yaml"]
    seen_control = False
    for path in files:
        data = path.read_bytes()
        seen_control = seen_control or control in data
        for key in keys:
            assert key.encode() not in data, f"a key was written to {path.name}"
    assert seen_control, f"the scan found no {control!r} in {files}"


@pytest.fixture
def sim_live() -> Any:
    """A simulator subprocess that accepts only this test's keys (as Upbit accepts only yours)."""
    ak, sk = _keys()
    sim = SimulatorProcess(args=SIM_ARGS, access_key=ak, secret_key=sk).start()
    try:
        yield sim
    finally:
        sim.stop()


def test_live_run_trades_stops_on_sigterm_and_books_match_the_exchange(sim_live, tmp_path):
    sim = sim_live
    ak, sk = sim.access_key, sim.secret_key
    strategy = tmp_path / "live.yaml"
    strategy.write_text(STRATEGY)
    env = _live_env(sim, tmp_path, ak, sk)
    proc = _trader(["run", "--strategy", str(strategy)], env, tmp_path)
    try:
        deadline = time.monotonic() + 20
        while _closed_count(sim, ak, sk, sim.market) < MIN_ORDERS:
            assert proc.poll() is None, "the live run stopped by itself:\n" + "".join(proc.communicate())
            assert time.monotonic() < deadline, "no trades within 20 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err[-3000:]
    assert f"trading {sim.market} (LIVE)" in out
    assert "stopped (signal SIGTERM)" in out
    sim.control.pause()  # nothing moves while the books are compared

    view = asyncio.run(_exchange_view(sim, ak, sk, sim.market))
    closed: list[OrderSnapshot] = view["closed"]
    assert len(closed) >= MIN_ORDERS and not view["open"]
    db = Database.open(env["TRADER_DATABASE_URL"])
    try:
        repo = Repository(db)
        rows = {o.identifier: o for o in repo.orders()}
        # every exchange order was recorded by its identifier, in the same final state, same volume
        assert {o.identifier for o in closed} == set(rows)
        for o in closed:
            row = rows[o.identifier]  # type: ignore[index]
            assert (row.uuid, row.side, row.state, row.executed_volume, row.paid_fee) == (
                o.uuid, o.side.value, _local_state(o), o.executed_volume, o.paid_fee
            ), o.identifier
        assert not repo.unresolved_orders()
        # every exchange trade stored exactly once, with its exact price and volume
        ex_trades = {(t.trade_uuid, t.side, t.price, t.volume) for o in closed for t in o.trades}
        db_fills = repo.fills()
        assert len(db_fills) == len({f.trade_uuid for f in db_fills})
        assert {(f.trade_uuid, f.side, f.price, f.volume) for f in db_fills} == ex_trades
        # the ledger rebuilt from the stored fills equals the exchange's balances, to the last won
        meta = asyncio.run(load_meta(repo))
        assert meta is not None
        pf = asyncio.run(rebuild_ledger(repo, meta))
        balances: dict[str, Balance] = view["balances"]
        exact = {"krw_tolerance": Decimal(0), "volume_tolerance": Decimal(0)}
        _rows, bad = compare(balances, pf, [sim.market], **exact)
        assert not bad, f"ledger differs from the exchange: {bad}"
        coin = sim.market.split("-")[1]
        if coin in balances and balances[coin].total:
            assert pf.position(sim.market).avg_buy_price == balances[coin].avg_buy_price
        events = repo.events()
        assert events  # the run did log events; none of them may carry a key
        for ev in events:
            assert ak not in repr(ev) and sk not in repr(ev)
    finally:
        db.close()

    # `reconcile` on the live path agrees too (same env, no --paper)
    rec = subprocess.run(
        [sys.executable, "-m", "trader", "reconcile", "--market", sim.market], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert "ledger and exchange agree" in rec.stdout
    outputs = [out, err, rec.stdout, rec.stderr]
    _assert_no_keys_anywhere(outputs, tmp_path, ak, sk, control=str(closed[0].identifier).encode())


@pytest.mark.parametrize("wrong", ["secret", "access"])
def test_live_run_with_wrong_keys_fails_fast_with_upbits_error_and_no_key(sim_live, tmp_path, wrong):
    sim = sim_live
    bad_ak, bad_sk = _keys()
    ak = bad_ak if wrong == "access" else sim.access_key
    sk = bad_sk if wrong == "secret" else sim.secret_key
    strategy = tmp_path / "live.yaml"
    strategy.write_text(STRATEGY)
    env = _live_env(sim, tmp_path, ak, sk)
    del env["TRADER_DATABASE_URL"]  # the live default: <TRADER_VAR_DIR>/trader.db, directory created
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "trader", "run", "--strategy", str(strategy)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert proc.returncode != 0
    assert elapsed < 20, f"took {elapsed:.1f} s to give up"
    expected = "jwt_verification" if wrong == "secret" else "invalid_access_key"
    assert f"error: the exchange refused: 401 {expected}" in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert (tmp_path / "var" / "trader.db").exists()
    _assert_no_keys_anywhere([proc.stdout, proc.stderr], tmp_path, ak, sk, sim.access_key, sim.secret_key,
                             control=b"CREATE TABLE")


@pytest.mark.parametrize(
    "option", [["--sim-url", "http://127.0.0.1:9"], ["--krw", "1000000"], ["--sim-speed", "600"]]
)
def test_simulator_options_without_paper_are_refused_not_traded_live(sim_live, tmp_path, option):
    """Forgetting `--paper` must not turn a paper run into a live one: `--sim-url` and the other
    simulator options were silently ignored and the run traded with the real keys on
    TRADER_UPBIT_BASE_URL (Upbit itself by default; here the stand-in simulator)."""
    sim = sim_live
    strategy = tmp_path / "live.yaml"
    strategy.write_text(STRATEGY)
    env = _live_env(sim, tmp_path, sim.access_key, sim.secret_key)
    proc = subprocess.run(
        [sys.executable, "-m", "trader", "run", "--strategy", str(strategy), *option, "--max-runtime-s", "3"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr[-3000:]
    assert option[0] in proc.stderr and "--paper" in proc.stderr
    assert not (tmp_path / "live.db").exists()  # refused before touching anything
    assert _closed_count(sim, sim.access_key, sim.secret_key, sim.market) == 0
    rec = subprocess.run(
        [sys.executable, "-m", "trader", "reconcile", "--market", sim.market, "--sim-url", "http://127.0.0.1:9"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert rec.returncode == 2 and "--paper" in rec.stderr, rec.stdout + rec.stderr
    assert not (tmp_path / "live.db").exists()
