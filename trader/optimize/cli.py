"""`python -m trader optimize`: search a strategy's parameters (Optuna), optionally walk-forward.

`--local` runs one worker in this process (`trader.optimize.study`); otherwise the distributed
optimiser `python -m flows.optimize` (Prefect + Dask) runs in a child process with the same
arguments — `trader/` never imports Prefect, as for the demo. Dates are KST.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from trader import cli_types as t

PROJECT_DIR = Path(__file__).resolve().parents[2]
FLOW_MODULE = PROJECT_DIR / "flows" / "optimize.py"

DESCRIPTION = """Tune the parameters a space file names (paths in the strategy, ranges, constraints)
by backtesting each trial on the engine that trades, over a data file and a date range (KST).
The strategy as given is trial 0. Objectives: return_pct, sharpe, sortino, calmar, profit_dd
(return % + max drawdown %), total_profit_krw, profit_factor; a run with fewer than
--min-trades round trips is pruned. Same --seed, one worker (--local) → same trials."""

# (flag, dest, takes a value): how the arguments are passed on to `python -m flows.optimize`
PASSED: tuple[tuple[str, str, bool], ...] = (
    ("--strategy", "strategy", True), ("--space", "space", True), ("--data", "data", True),
    ("--from", "start", True), ("--to", "end", True), ("--trials", "trials", True),
    ("--seed", "seed", True), ("--objective", "objective", True), ("--json", "json", True),
    ("--best-yaml", "best_yaml", True), ("--min-trades", "min_trades", True),
    ("--storage", "storage", True), ("--study", "study", True), ("--walk-forward", "walk_forward", True),
    ("--anchored", "anchored", False), ("--workers", "workers", True),
    ("--dask-address", "dask_address", True), ("--krw", "krw", True),
    ("--ticks-per-candle", "ticks_per_candle", True), ("--top", "top", True),
)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("optimize", help="search strategy parameters (Optuna), walk-forward",
                              description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(func=run)


def build_parser(prog: str = "python -m flows.optimize") -> argparse.ArgumentParser:
    """A stand-alone parser with the same arguments (for `python -m flows.optimize`)."""
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strategy", required=True, metavar="FILE", help="strategy YAML")
    p.add_argument("--space", required=True, metavar="SPACE.yaml", help="parameter space YAML")
    p.add_argument("--data", required=True, metavar="FILE", help="candles or ticks (.csv/.parquet)")
    p.add_argument("--from", dest="start", type=t.kst_time, metavar="DATE", help="first day/time (KST)")
    p.add_argument("--to", dest="end", type=t.kst_time, metavar="DATE", help="end (exclusive, KST)")
    p.add_argument("--trials", type=t.int_range(1, 1_000_000), required=True,
                   help="trials in the study (per walk-forward window)")
    p.add_argument("--seed", type=t.seed, default=0,
                   help="sampler, trade-synthesis and book seed (default 0)")
    p.add_argument("--objective", default="return_pct", help="what to maximise (default return_pct)")
    p.add_argument("--min-trades", type=t.int_range(0, 1_000_000), default=3,
                   help="fewer round trips → pruned (default 3)")
    p.add_argument("--json", type=t.out_file, metavar="OUT",
                   help="write best, trials (and windows) as JSON ('-' = stdout)")
    p.add_argument("--best-yaml", type=t.out_file, metavar="OUT.yaml",
                   help="write the best strategy as a ready-to-run YAML")
    p.add_argument("--storage", type=t.db_url,
                   help="Optuna RDB URL (default sqlite:///var/optuna.db; not the product's DB)")
    p.add_argument("--study", help="study name (default: derived from strategy, space, data, seed, ...)")
    p.add_argument("--walk-forward", metavar="TRAIN:TEST[:STEP]",
                   help="walk-forward windows, e.g. 90d:30d (step = test) or 90d:30d:15d")
    p.add_argument("--anchored", action="store_true", help="train windows all start at the period's start")
    p.add_argument("--workers", type=t.int_range(1, 1024),
                   help="Dask workers (distributed runs; default one per core)")
    p.add_argument("--dask-address", metavar="tcp://HOST:PORT", help="an existing Dask scheduler")
    p.add_argument("--local", action="store_true", help="one worker in this process (no Prefect, no Dask)")
    p.add_argument("--krw", type=t.krw, default="10000000", help="starting KRW (default 10,000,000)")
    p.add_argument("--ticks-per-candle", type=t.ticks_per_candle, default=None,
                   help="trades per candle (default 8)")
    p.add_argument("--top", type=t.int_range(1, 10_000), default=10, help="leaderboard rows (default 10)")


def flow_command(args: argparse.Namespace) -> list[str]:
    """The `python -m flows.optimize ...` command line for these arguments."""
    cmd = [sys.executable, "-m", "flows.optimize"]
    for flag, dest, takes_value in PASSED:
        value = getattr(args, dest, None)
        if takes_value and value is not None:
            cmd += [flag, str(value)]
        elif not takes_value and value:
            cmd.append(flag)
    return cmd


def run(args: argparse.Namespace) -> int:
    if not args.local:
        if not FLOW_MODULE.exists():
            print("error: the distributed optimiser (flows/optimize.py, Prefect + Dask) is not in this "
                  "checkout; run with --local for one in-process worker", file=sys.stderr)
            return 2
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_DIR), env.get("PYTHONPATH", "")) if p)
        return subprocess.call(flow_command(args), env=env)
    if args.workers not in (None, 1) or args.dask_address:
        print("error: --workers/--dask-address need the distributed optimiser (drop --local)",
              file=sys.stderr)
        return 2
    return run_local(args)


def build_spec(args: argparse.Namespace):
    """OptimizeSpec from the arguments; raises the module's errors with a message for the user."""
    from decimal import Decimal, InvalidOperation

    import yaml

    from trader.backtest.runner import TICKS_PER_CANDLE
    from trader.optimize.space import SpaceError
    from trader.optimize.study import DEFAULT_STORAGE, OptimizeSpec
    from trader.strategy.config import StrategyConfigError, load_strategy

    load_strategy(args.strategy)  # StrategyConfigError names the field
    try:
        strategy = yaml.safe_load(Path(args.strategy).read_text(encoding="utf-8"))
        space = yaml.safe_load(Path(args.space).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpaceError(f"cannot read space file {args.space}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise StrategyConfigError(f"not valid YAML: {exc}") from None
    if not isinstance(space, dict):
        raise SpaceError(f"{args.space}: a space file must be a mapping with params: (and constraints:)")
    try:
        krw = Decimal(str(args.krw).replace(",", "").replace("_", ""))
    except InvalidOperation:
        raise SpaceError(f"krw: {args.krw!r} is not a number") from None
    kwargs: dict[str, Any] = {}
    if args.study:
        kwargs["study_name"] = args.study
    return OptimizeSpec(strategy=strategy, space=space, data=str(args.data), start=args.start, end=args.end,
                        seed=args.seed, objective=args.objective, min_trades=args.min_trades,
                        trials=args.trials, krw=str(krw),
                        ticks_per_candle=args.ticks_per_candle or TICKS_PER_CANDLE,
                        storage=args.storage or DEFAULT_STORAGE, **kwargs)


class Progress:
    """The live line on stderr: trials done/N, best so far, trials/s (a line per 10 % off a tty)."""

    def __init__(self, total: int, label: str = "", stream=None) -> None:
        self.total, self.label = total, label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.perf_counter()
        self.every = max(1, total // 10)

    def __call__(self, study, trial) -> None:
        from trader.optimize.study import finished

        done = finished(study)
        rate = done / max(time.perf_counter() - self.started, 1e-9)
        try:
            b = study.best_trial
            best = f"best {b.value:.6g} (#{b.number})"
        except ValueError:
            best = "best -"
        line = f"{self.label}trials {done}/{self.total}  {best}  {rate:.1f} trials/s"
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done >= self.total else ""))
        elif done % self.every == 0 or done >= self.total:
            self.stream.write(line + "\n")
        self.stream.flush()


def _short(path: str) -> str:
    parts = path.split(".")
    return ".".join(parts[-2:]) if len(parts) > 2 else path


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "-" if v is None else str(v)


def render_leaderboard(rows: list[dict], objective: str) -> str:
    """The leaderboard as a text table (one column per parameter)."""
    if not rows:
        return "(no trial was scored)"
    paths = list(rows[0]["params"])
    head = ["#", "trial", objective, "trades", "return %", "max dd %", "sharpe", *map(_short, paths)]
    body = [[str(r["rank"]), str(r["number"]) + ("*" if r["as_given"] else ""), _fmt(r["value"]),
             str(r["trades"]), _fmt(r["return_pct"]), _fmt(r["max_drawdown_pct"]), _fmt(r["sharpe"]),
             *(_fmt(r["params"].get(p)) for p in paths)] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines) + "\n(* = the strategy as given)"


def render_windows(result: dict) -> str:
    """In-sample against out-of-sample, per walk-forward window."""
    head = f"{'#':>2}  {'train (KST)':33}  {'test (KST)':33}  {'IS ret %':>9}  {'OOS ret %':>9}  " \
           f"{'OOS trades':>10}  {'OOS sharpe':>10}  {'DSR':>5}"
    lines = [head]
    for r in result["windows"]:
        tr, te = r["train"], r["test"]
        ins, oos = r["in_sample"], r["out_of_sample"]
        dsr = (r.get("overfitting") or {}).get("dsr")
        lines.append(f"{r['index']:>2}  {tr['start'][:16]} → {tr['end'][:16]}  {te['start'][:16]} → "
                     f"{te['end'][:16]}  {_fmt(ins.get('return_pct')):>9}  {_fmt(oos.get('return_pct')):>9}  "
                     f"{_fmt(oos.get('trades')):>10}  {_fmt(oos.get('sharpe')):>10}  {_fmt(dsr):>5}")
    s = result["summary"]
    lines.append(f"out of sample, chained: {s['out_of_sample_return_pct']:+.2f} %  mean IS "
                 f"{_fmt(s['mean_in_sample_return_pct'])} %  "
                 f"mean OOS {_fmt(s['mean_out_of_sample_return_pct'])} %"
                 f"  efficiency {_fmt(s['efficiency'])}  mean DSR {_fmt(s['mean_deflated_sharpe'])}")
    return "\n".join(lines)


def best_yaml_text(spec, params: dict, value: float | None, note: str) -> str:
    """The best strategy as YAML, with the backtest command that reproduces its value."""
    import yaml

    from trader.optimize.space import apply

    cmd = ["python -m trader backtest --strategy THIS_FILE", f"--data {spec.data}"]
    if spec.start:
        cmd.append(f"--from {spec.start}")
    if spec.end:
        cmd.append(f"--to {spec.end}")
    cmd += [f"--seed {spec.seed}", f"--ticks-per-candle {spec.ticks_per_candle}", f"--krw {spec.krw}"]
    header = (f"# {note}: {spec.objective} = {value!r}\n# study {spec.study_name}; reproduce with:\n"
              f"#   {' '.join(cmd)}\n")
    return header + yaml.safe_dump(apply(spec.strategy, params), sort_keys=False, allow_unicode=True)


def _write(path: str, text: str) -> None:
    if path == "-":
        print(text)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")


def run_local(args: argparse.Namespace) -> int:
    import json

    from trader.marketdata.candles import MarketDataError
    from trader.optimize.cache import market_file
    from trader.optimize.space import SpaceError
    from trader.optimize.study import (
        StorageError,
        best,
        check_spec,
        create_study,
        leaderboard,
        run_worker,
        trials,
    )
    from trader.strategy.config import StrategyConfigError

    try:
        spec = build_spec(args)
        check_spec(spec)
        market_file(spec.data)
        if args.walk_forward:
            from trader.optimize.walkforward import data_period, parse_walk_forward, windows

            train_s, test_s, step_s = parse_walk_forward(args.walk_forward)
            wins = windows(*data_period(spec), train_s, test_s, step_s, args.anchored)
        elif args.anchored:
            raise SpaceError("anchored: only with --walk-forward")
    except (SpaceError, StorageError, StrategyConfigError, MarketDataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.walk_forward:
        return _walk_forward_local(args, spec, wins)
    study = create_study(spec)
    started, cpu = time.perf_counter(), time.process_time()
    ran = run_worker(spec, spec.trials, callbacks=[Progress(spec.trials)])
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    board = leaderboard(study, args.top)
    print(render_leaderboard(board, spec.objective))
    print(f"{ran} trials run in {wall:.1f} s wall, {cpu:.1f} s CPU; "
          f"study {spec.study_name} in {spec.storage}")
    try:
        top: dict | None = best(study)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        top = None
    if args.json:
        doc = {"spec": spec.to_dict(),
               "best": {"params": top["params"], "value": top["value"]} if top else None,
               "best_trial": top["number"] if top else None, "leaderboard": board, "trials": trials(study)}
        _write(args.json, json.dumps(doc, ensure_ascii=False, indent=1))
    if top is None:
        return 1
    if args.best_yaml:
        _write(args.best_yaml,
               best_yaml_text(spec, top["params"], top["value"], f"best trial #{top['number']}"))
    return 0


def _walk_forward_local(args: argparse.Namespace, spec, wins) -> int:
    import json
    from dataclasses import replace

    from trader.optimize.study import create_study, run_worker, trials
    from trader.optimize.walkforward import walk_forward

    studies: dict[int, Any] = {}

    def optimise(wspec, w) -> dict:
        from trader.optimize.study import best, load_study

        study = create_study(wspec)
        label = f"window {w.index + 1}/{len(wins)}: "
        run_worker(wspec, wspec.trials, callbacks=[Progress(wspec.trials, label)])
        studies[w.index] = study
        return best(load_study(wspec))["params"]

    try:
        result = walk_forward(spec, wins, optimise)
    except ValueError as exc:  # a window where no trial was scored
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(render_windows(result))
    last = result["windows"][-1]
    if args.json:
        every: list[dict] = []
        for row in result["windows"]:
            row["trials"] = trials(studies[row["index"]])
            every += [{"window": row["index"], **t} for t in row["trials"]]
        doc = {"spec": spec.to_dict(),
               "best": {"params": last["best_params"], "value": last["in_sample"]["value"]},
               "trials": every, **result}
        _write(args.json, json.dumps(doc, ensure_ascii=False, indent=1))
    if args.best_yaml:
        wspec = replace(spec, start=last["train"]["start"], end=last["train"]["end"])
        note = f"walk-forward: the last window's winner (train {wspec.start} → {wspec.end})"
        _write(args.best_yaml, best_yaml_text(wspec, last["best_params"], last["in_sample"]["value"], note))
    return 0
