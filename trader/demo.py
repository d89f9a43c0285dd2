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

PROJECT_DIR = Path(__file__).resolve().parent.parent


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "demo",
        help="paper-trade 3 weeks of recorded KRW-ETH on the simulator, then report and e-mail",
        description="Start the simulator (fast replay of data/KRW-ETH_15m_2024.parquet), run the "
        "Prefect `trading` flow in paper mode, run the `report` flow, deliver its e-mail to a local "
        "SMTP sink, and print where everything is (var/reports/demo/). Offline; about a minute.",
    )
    p.add_argument("--strategy", help="strategy YAML (default: trader/strategy/examples/demo.yaml)")
    p.add_argument("--start", help="market time to start from, ISO, KST (default: 2024-01-01T09:00)")
    p.add_argument("--days", help="span of market time to trade (default: 21)")
    p.add_argument("--speed", help="simulator speed, × real time or 'max' (default: max)")
    p.add_argument(
        "--no-order-subflows", action="store_true", help="confirm orders without a subflow per intent"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cmd = [sys.executable, "-m", "flows.demo"]
    for flag in ("strategy", "start", "days", "speed"):
        value = getattr(args, flag)
        if value is not None:
            cmd += [f"--{flag}", str(value)]
    if args.no_order_subflows:
        cmd.append("--no-order-subflows")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_DIR), env.get("PYTHONPATH", "")) if p)
    return subprocess.call(cmd, cwd=PROJECT_DIR, env=env)
