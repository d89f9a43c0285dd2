"""`python -m trader demo` (`make demo`): the paper-trading demo on the local simulator.

A thin launcher: the demo orchestrates Prefect flows, and `trader/` never imports Prefect (nor
`flows/`), so it runs `python -m flows.demo` from the checkout in a child process and passes the
options through. See flows/demo.py for what it does.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from trader import cli_types as t

PROJECT_DIR = Path(__file__).resolve().parent.parent


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "demo",
        help="paper-trade 3 weeks of recorded KRW-ETH on the simulator, then report and e-mail",
        description="Start the simulator (a lockstep replay of data/KRW-ETH_15m_2024.parquet, "
        "2024-01-01 09:00 → 01-22 09:00 KST), run the Prefect `trading` flow in paper mode, run the "
        "`report` flow, deliver its e-mail to a local SMTP sink, and print a summary with the run's "
        "fingerprint — the same as `python -m trader backtest` prints for that window. Offline; under "
        "a minute.",
    )
    p.add_argument("--strategy", help="strategy YAML (default: trader/strategy/examples/demo.yaml)")
    p.add_argument("--start", type=t.kst_time,
                   help="market time to start from, ISO, KST (default: 2024-01-01T09:00)")
    p.add_argument("--days", type=t.positive_float(3650), help="span of market time to trade (default: 21)")
    p.add_argument(
        "--free-running",
        action="store_true",
        help="replay at --speed without lockstep (fills then differ from the backtest's)",
    )
    p.add_argument("--speed", type=t.speed_text, help="simulator speed, × real time or 'max' (default: max)")
    p.add_argument(
        "--order-subflows", action="store_true", help="confirm each order in a place-order subflow"
    )
    p.set_defaults(func=run)


DEMO_DATA = PROJECT_DIR / "data" / "KRW-ETH_15m_2024.parquet"  # what flows/demo.py replays


def start_problem(start: str, data: Path = DEMO_DATA) -> str | None:
    """A --start the demo's data does not reach (it would replay nothing): the message, or None."""
    import pandas as pd

    from trader.marketdata.candles import slice_time

    if not data.exists():
        return None
    frame = pd.read_parquet(data, columns=["ts_ms"]) if "ts_ms" in _columns(data) else None
    if frame is None or len(slice_time(frame, start, None)):
        return None
    last = pd.Timestamp(int(frame["ts_ms"].max()), unit="ms", tz="UTC").tz_convert("Asia/Seoul")
    return f"--start {start}: {data.name} ends at {last:%Y-%m-%d %H:%M} KST; start before that"


def _columns(data: Path) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(data).names)


def run(args: argparse.Namespace) -> int:
    problem = start_problem(args.start) if args.start else None
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    cmd = [sys.executable, "-m", "flows.demo"]
    for flag in ("strategy", "start", "days", "speed"):
        value = getattr(args, flag)
        if value is not None:
            cmd += [f"--{flag}", str(value)]
    for flag in ("free_running", "order_subflows"):
        if getattr(args, flag):
            cmd.append("--" + flag.replace("_", "-"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_DIR), env.get("PYTHONPATH", "")) if p)
    return subprocess.call(cmd, cwd=PROJECT_DIR, env=env)
