"""`optimize`: Optuna search on Dask through Prefect — batches of trials against one shared study.

    python -m flows.optimize --strategy S --space SPACE.yaml --data FILE --trials N --seed K ...
    (the same arguments as `python -m trader optimize`, whose parser this module imports)

The flow creates the study (`trader.optimize.study.create_study`), then keeps one `optuna-batch`
task per Dask worker slot in flight. A batch is an Optuna worker (`run_worker(spec, n)`): many
trials against the study in its RDB storage, the pattern Optuna documents for distributed search.
A Prefect task on Dask costs ~0.2 s and a trial ~0.1 s, so one task per trial would spend most of
the run on overhead; batches are sized (and re-sized from what the finished ones measured) so the
slots' time outside `run_worker` stays under 5 % of the run (`plan_batch`). The flow process polls
the study meanwhile and updates the leaderboard artifact (and, walking forward, the window table).

Task runner: a LocalCluster with one single-threaded worker process per core, or the existing
cluster at `dask_address` (a flow parameter, so a deployment run from the UI can pick either). The
trading rules and the trial itself live in `trader/optimize`; nothing here re-implements them.
"""

from __future__ import annotations

import math
import os
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from prefect import flow, get_run_logger, task
from prefect_dask import DaskTaskRunner

from flows.hooks import mail_failure_alert

TARGET_OVERHEAD = 0.05  # the share of worker-slot time allowed outside run_worker
FIRST_TRIAL_S = 0.1  # a trial's cost before any batch has measured one (15-minute year: ≈0.1 s)
FIRST_OVERHEAD_S = 0.5  # a batch's Prefect+Dask cost before one was measured (a task ≈ 176 ms)
POLL_S = 2.0  # how often the flow reads the study for the live leaderboard
LEADERBOARD_ROWS = 10


# --- the task runner ---------------------------------------------------------------------------
class OptimizeTaskRunner(DaskTaskRunner):
    """DaskTaskRunner that reads the run's `dask_address` / `workers` parameters when it connects.

    A flow's task runner is fixed when the flow is defined, before any parameter is known; the
    Dask client is only made at the first submit, inside the run, so the choice between an
    existing cluster and a LocalCluster of `workers` processes is made there.
    """

    @property
    def client(self):  # type: ignore[override]
        if self._client is None and self._cluster is None and not self.address:
            self.choose(_run_parameters())
        return super().client

    def choose(self, params: dict[str, Any]) -> None:
        """An existing cluster at params' dask_address, else a LocalCluster of `workers` processes."""
        if params.get("dask_address"):
            self.address = str(params["dask_address"])
            self.cluster_kwargs = {}
        elif params.get("workers"):
            self.cluster_kwargs = {**self.cluster_kwargs, "n_workers": int(params["workers"])}


def _run_parameters() -> dict[str, Any]:
    try:
        from prefect.runtime import flow_run

        return dict(flow_run.parameters or {})
    except Exception:  # outside a run: no parameters
        return {}


def local_cluster_kwargs(workers: int | None = None) -> dict[str, Any]:
    """One single-threaded worker process per core: trials are CPU-bound Python (the GIL)."""
    return {
        "n_workers": workers or os.cpu_count() or 1,
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": None,  # no dashboard port to collide with on a shared machine
    }


# --- batch sizing ------------------------------------------------------------------------------
@dataclass
class BatchStats:
    """What the batches measured: slot time inside run_worker against the phase's wall time."""

    slots: int = 0
    batches: int = 0
    trials: int = 0
    busy_s: float = 0.0  # Σ seconds inside run_worker (study load, data load, trials)
    wall_s: float = 0.0  # Σ batch phases' wall time (first submit to last result)
    connect_s: float = 0.0  # starting or reaching the cluster and warming its workers (once per run)
    probe_s: float = FIRST_TRIAL_S  # one trial timed on the slowest worker while warming up
    dispatch_s: float = 0.0  # Σ per batch: submit to result, less its time inside run_worker
    workers: set[str] = field(default_factory=set)

    @property
    def trial_s(self) -> float:
        return self.busy_s / self.trials if self.trials else self.probe_s

    @property
    def overhead_share(self) -> float:
        """Share of slot time outside run_worker: Prefect + Dask dispatch, idle slots at the end."""
        capacity = self.slots * self.wall_s
        return max(0.0, 1.0 - self.busy_s / capacity) if capacity > 0 else 0.0

    @property
    def run_overhead_share(self) -> float:
        """The same, counting the cluster's start and the workers' one-off warm-up as overhead too."""
        capacity = self.slots * (self.wall_s + self.connect_s)
        return max(0.0, 1.0 - self.busy_s / capacity) if capacity > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "slots": self.slots,
            "batches": self.batches,
            "trials": self.trials,
            "busy_s": round(self.busy_s, 3),
            "wall_s": round(self.wall_s, 3),
            "connect_s": round(self.connect_s, 3),
            "trial_s": round(self.trial_s, 4),
            "probe_s": round(self.probe_s, 4),
            "dispatch_s": round(self.dispatch_s, 3),  # the rest of the overhead: slots idle at the end
            "overhead_share": round(self.overhead_share, 4),
            "run_overhead_share": round(self.run_overhead_share, 4),
            "workers": sorted(self.workers),
        }


def plan_batch(remaining: int, free_slots: int, trial_s: float, overhead_s: float,
               target: float = TARGET_OVERHEAD / 2) -> int:
    """Trials for the next batch: at least enough that overhead_s is `target` of the batch's time
    (half the 5 % budget: the other half is for the slots' uneven end);
    up to twice that while it is under a quarter of each free slot's share of what is left (later
    batches are sized from what earlier ones measured, and the slots end together instead of one
    running a long tail alone); never more than that even share."""
    if remaining <= 0:
        return 0
    trial_s = max(trial_s, 1e-4)
    floor_n = math.ceil(overhead_s * (1 - target) / (target * trial_s))
    slots = max(free_slots, 1)
    share, quarter = math.ceil(remaining / slots), math.ceil(remaining / (4 * slots))
    return max(1, min(remaining, share, max(floor_n, min(2 * floor_n, quarter))))


@task(name="optuna-batch", task_run_name="batch-{label}", persist_result=False)
def optuna_batch(spec: Any, n_trials: int, worker: int, label: str) -> dict[str, Any]:
    """One Optuna worker: up to n_trials trials of the shared study (the sampler seeded + worker)."""
    from trader.optimize.study import run_worker

    t0, c0 = time.perf_counter(), time.process_time()
    ran = run_worker(spec, n_trials, worker=worker)
    return {
        "label": label,
        "asked": n_trials,
        "ran": ran,
        "seconds": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }


def warm_worker(spec: Any) -> int:
    """Run on every Dask worker before the first batch: import the task engine and the trial code,
    load the data file and its cached trades (once per worker, not per batch or trial); returns
    the seconds one trial took there."""
    import prefect.task_engine  # noqa: F401  (a fresh worker process pays this import once, here)

    from trader.optimize.cache import cached_trades, market_file
    from trader.optimize.space import base_values
    from trader.optimize.study import space_of
    from trader.optimize.trial import evaluate

    market_file(spec.data)
    cached_trades(spec.data, seed=spec.seed, ticks_per_candle=spec.ticks_per_candle)
    # one backtest of the strategy as given, timed: the first batches are sized from it
    t0 = time.perf_counter()
    evaluate(spec, base_values(space_of(spec), spec.strategy))
    return time.perf_counter() - t0


def _slots(runner: Any) -> int:
    """Worker threads the cluster offers (one per worker process for the LocalCluster)."""
    info = runner.client.scheduler_info(n_workers=-1)
    return max(1, sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()))


def _runner() -> Any:
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    return ctx.task_runner if ctx else None


def run_batches(spec: Any, stats: BatchStats, *, prefix: str = "", progress: Any = None) -> None:
    """Run the spec's study to spec.trials finished trials as rolling batches on the cluster.

    `progress(study, final)` is called after each finished batch, every POLL_S seconds meanwhile
    and once at the end (final=True).
    """
    import distributed

    from trader.optimize.study import finished

    runner = _runner()
    if not stats.slots:  # first call of the run: reach the cluster, ready each worker once
        t0 = time.perf_counter()
        stats.slots = _slots(runner)
        probes = runner.client.run(warm_worker, spec).values()
        stats.probe_s = max(probes) if probes else FIRST_TRIAL_S
        stats.connect_s = time.perf_counter() - t0
    study = _load(spec)
    pending: dict[Any, int] = {}  # distributed future → trials asked
    futures: dict[Any, Any] = {}  # distributed future → Prefect future
    overhead_s = FIRST_OVERHEAD_S
    measured: list[float] = []
    seq = 0
    t_start = time.perf_counter()
    # bookkeeping of our own, not the study's count: a running batch's finished trials are in the
    # study and in its ask, and counting both would leave a free slot idle until it ends
    done_before, ran = finished(study), 0
    while True:
        left = spec.trials - done_before - ran - sum(pending.values())
        while len(pending) < stats.slots and left > 0:
            n = plan_batch(left, stats.slots - len(pending), stats.trial_s, overhead_s)
            seq += 1
            fut = optuna_batch.submit(spec, n, seq, f"{prefix}{seq}")
            pending[fut.wrapped_future], futures[fut.wrapped_future] = n, fut
            fut.submitted_at = time.perf_counter()  # type: ignore[attr-defined]
            left -= n
        if not pending:
            break
        try:  # the runner's client is not the process default (set_as_default=False): name it
            with runner.client.as_current():
                done, _ = distributed.wait(list(pending), timeout=POLL_S, return_when="FIRST_COMPLETED")
        except (TimeoutError, distributed.TimeoutError):
            done = set()
        stopped = False
        for key in done:
            fut = futures.pop(key)
            pending.pop(key)
            out = fut.result()
            stats.batches += 1
            stats.trials += out["ran"]
            ran += out["ran"]
            stats.busy_s += out["seconds"]
            stats.workers.add(out["worker"])
            measured.append(max(0.0, time.perf_counter() - fut.submitted_at - out["seconds"]))
            stats.dispatch_s += measured[-1]
            overhead_s = max(measured)  # the worst batch so far: sizing errs towards fewer batches
            stopped |= out["ran"] < out["asked"]  # the study is full (another batch got there)
        if progress is not None:
            progress(study, False)
        if stopped and finished(study) >= spec.trials:
            for key in list(pending):  # nothing left to ask for; let the others end
                futures.pop(key).result()
                pending.pop(key)
            break
    stats.wall_s += time.perf_counter() - t_start
    if progress is not None:
        progress(study, True)  # the final figures, even when the table itself did not change


def _load(spec: Any) -> Any:
    import optuna

    return optuna.load_study(study_name=spec.study_name, storage=spec.storage)


# --- artifacts ---------------------------------------------------------------------------------
def artifact_key(*parts: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    text = "-".join(p for p in parts if p)
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")[:120]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def leaderboard_markdown(study: Any, spec: Any, started: float, k: int = LEADERBOARD_ROWS) -> str:
    """The live leaderboard: progress line, then the k best trials with their parameters."""
    from trader.optimize.study import finished, leaderboard
    from trader.reporting.periods import fmt_kst
    from trader.timeutil import now_ms

    done = finished(study)
    rate = done / max(time.perf_counter() - started, 1e-9)
    board = leaderboard(study, k)
    best = _fmt(board[0]["value"]) if board else "-"
    names = sorted({p for row in board for p in row["params"]})
    head = ["#", "trial", spec.objective, "trades", "return %", "MDD %", *names]
    lines = [
        f"**{spec.study_name}** · {done}/{spec.trials} trials · best {spec.objective} {best} · "
        f"{rate:.2f} trials/s · {fmt_kst(now_ms(), with_seconds=True)}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in board:
        number = f"{row['number']} (as given)" if row.get("as_given") else row["number"]
        cells = [row["rank"], number, row["value"], row["trades"], row.get("return_pct"),
                 row.get("max_drawdown_pct"), *(row["params"].get(n) for n in names)]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    if not board:
        lines.append("| " + " | ".join(["-"] * len(head)) + " |")
    return "\n".join(lines)


def windows_markdown(rows: list[dict[str, Any]], objective: str) -> str:
    """The walk-forward table: train and test spans (KST), chosen parameters, in/out of sample."""
    head = ["window", "train (KST)", "test (KST)", f"IS {objective}", "IS return %", "OOS return %",
            "OOS trades", "best params"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, w in enumerate(rows, 1):
        ins, oos = w.get("in_sample") or {}, w.get("out_of_sample") or {}
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted((w.get("best_params") or {}).items()))
        cells = [i, _span(w.get("train")), _span(w.get("test")), ins.get("value"), ins.get("return_pct"),
                 oos.get("return_pct"), oos.get("trades"), params]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    return "\n".join(lines)


def _span(span: Any) -> str:
    if not span:
        return "-"
    return f"{span.get('start', '?')} → {span.get('end', '?')}"


class Publisher:
    """Markdown artifacts keyed per run; each update is a new version of the same key."""

    def __init__(self, spec: Any, run_id: str) -> None:
        self.spec = spec
        self.started = time.perf_counter()
        self.board_key = artifact_key("optimize", spec.study_name, run_id[:8], "leaderboard")
        self.windows_key = artifact_key("optimize", spec.study_name, run_id[:8], "windows")
        self._last_board = ""
        self._last_line = 0.0

    def leaderboard(self, study: Any, final: bool = False, spec: Any | None = None) -> None:
        from prefect.artifacts import create_markdown_artifact

        text = leaderboard_markdown(study, spec or self.spec, self.started)
        self._progress_line(text, final)
        body = text.split("\n", 1)[1]
        if final or body != self._last_board:  # a new version when the table changed, and at the end
            self._last_board = body
            create_markdown_artifact(markdown=text, key=self.board_key,
                                     description="Optuna leaderboard (updates while the study runs)")

    def windows(self, rows: list[dict[str, Any]]) -> None:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(markdown=windows_markdown(rows, self.spec.objective), key=self.windows_key,
                                 description="Walk-forward windows: in-sample vs out-of-sample")

    def _progress_line(self, text: str, final: bool) -> None:
        now = time.perf_counter()
        if final or now - self._last_line >= POLL_S:
            self._last_line = now
            print(text.split("\n", 1)[0].replace("**", ""), file=sys.stderr, flush=True)


# --- the flow ----------------------------------------------------------------------------------
# what the flow run's tasks share in this process (the window task runs inline in the flow)
_RUNS: dict[str, dict[str, Any]] = {}


def _run_id() -> str:
    from prefect.runtime import flow_run

    return str(flow_run.id or "local")


@task(name="walk-forward-window", task_run_name="window-{number}", persist_result=False)
def train_window(wspec: Any, number: int, train: str, test: str) -> dict[str, Any]:
    """Window `number`'s train study, run as batches on the cluster; its best parameters."""
    from trader.optimize.study import best, create_study, load_study

    state = _RUNS[_run_id()]
    create_study(wspec)
    run_batches(wspec, state["stats"], prefix=f"w{number}-",
                progress=lambda study, final: state["publisher"].leaderboard(study, final, wspec))
    top = best(load_study(wspec))
    state["rows"].append({"train": {"start": train[0], "end": train[1]},
                          "test": {"start": test[0], "end": test[1]},
                          "best_params": top["params"], "in_sample": {"value": top["value"]}})
    state["publisher"].windows(state["rows"])  # the out-of-sample columns fill in at the end
    return top["params"]


def _namespace(params: dict[str, Any]) -> Any:
    """The flow's parameters through the command's own parser (its types and checks apply)."""
    import argparse
    import contextlib
    import io
    from pathlib import Path

    from trader.optimize.cli import flow_command

    for key in ("json_out", "best_yaml", "html"):  # a run from the UI may name a new folder
        if params.get(key) and params[key] != "-":
            Path(params[key]).parent.mkdir(parents=True, exist_ok=True)
    given = {("json" if k == "json_out" else k): v for k, v in params.items()}
    argv = flow_command(argparse.Namespace(**given))[3:]  # drop "python -m flows.optimize"
    if params.get("html"):
        argv += ["--html", str(params["html"])]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return build_parser().parse_args(argv)
    except SystemExit:  # argparse's usage error: fail the run with its message, not an exit
        raise ValueError(err.getvalue().strip().splitlines()[-1]) from None


def _run_name() -> str:
    from prefect.runtime import flow_run

    p = flow_run.parameters
    mode = "wf" if p.get("walk_forward") else "study"
    return f"optimize-{mode}-{p.get('objective', 'return_pct')}-{p.get('trials')}x-seed{p.get('seed', 0)}"


@flow(
    name="optimize",
    flow_run_name=_run_name,
    task_runner=OptimizeTaskRunner(cluster_kwargs=local_cluster_kwargs()),
    persist_result=False,
    log_prints=False,
    on_failure=[mail_failure_alert],
    on_crashed=[mail_failure_alert],
)
def optimize(
    strategy: str,
    space: str,
    data: str,
    trials: int = 100,
    seed: int = 0,
    objective: str = "return_pct",
    start: str | None = None,
    end: str | None = None,
    min_trades: int = 3,
    storage: str | None = None,
    study: str | None = None,
    walk_forward: str | None = None,
    anchored: bool = False,
    workers: int | None = None,
    dask_address: str | None = None,
    krw: str = "10000000",
    ticks_per_candle: int | None = None,
    top: int = 10,
    json_out: str | None = None,
    best_yaml: str | None = None,
    html: str | None = None,
) -> dict[str, Any]:
    """Search the space's parameters (optionally walk-forward) on the Dask cluster.

    The arguments are those of `python -m trader optimize` (dates KST); `workers` sizes the
    LocalCluster, `dask_address` (tcp://HOST:PORT) uses an existing cluster instead.
    """
    from trader.optimize.cli import build_spec
    from trader.optimize.study import check_spec

    params = {k: v for k, v in locals().items() if k not in ("build_spec", "check_spec")}
    logger = get_run_logger()
    spec = build_spec(_namespace(params))
    check_spec(spec)
    run_id = _run_id()
    state = _RUNS[run_id] = {"stats": BatchStats(), "publisher": Publisher(spec, run_id), "rows": []}
    try:
        doc = _walk_forward(spec, params, state) if walk_forward else _study(spec, params, state)
    finally:
        _RUNS.pop(run_id, None)
    stats: BatchStats = state["stats"]
    doc["cluster"] = stats.as_dict()
    logger.info("%d trials in %d batches on %d slots: %.1f s, overhead %.1f %% of slot time "
                "(cluster reached in %.1f s)", stats.trials, stats.batches, stats.slots, stats.wall_s,
                100 * stats.overhead_share, stats.connect_s)
    write_outputs(spec, doc, params)
    return {k: v for k, v in doc.items() if k not in ("trials", "equity")}


def _study(spec: Any, params: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    from trader.optimize.study import best, create_study, leaderboard, load_study, trials

    create_study(spec)
    run_batches(spec, state["stats"], progress=state["publisher"].leaderboard)
    study = load_study(spec)
    try:
        top: dict | None = best(study)
    except ValueError:
        top = None
    return {"spec": spec.to_dict(),
            "best": {"params": top["params"], "value": top["value"]} if top else None,
            "best_trial": top["number"] if top else None,
            "leaderboard": leaderboard(study, params["top"]), "trials": trials(study)}


def _walk_forward(spec: Any, params: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    from trader.optimize.study import load_study, trials
    from trader.optimize.walkforward import data_period, parse_walk_forward, walk_forward, windows

    train_s, test_s, step_s = parse_walk_forward(params["walk_forward"])
    wins = windows(*data_period(spec), train_s, test_s, step_s, bool(params["anchored"]))

    def optimise(wspec: Any, w: Any) -> dict:
        d = w.to_dict()
        return train_window(wspec, w.index + 1, (d["train"]["start"], d["train"]["end"]),
                            (d["test"]["start"], d["test"]["end"]))

    result = walk_forward(spec, wins, optimise)
    state["publisher"].windows(result["windows"])
    every = []
    for row in result["windows"]:
        row["trials"] = trials(load_study(replace_name(spec, row["study"])))
        every += [{"window": row["index"], **t} for t in row["trials"]]
    last = result["windows"][-1]
    return {"spec": spec.to_dict(),
            "best": {"params": last["best_params"], "value": last["in_sample"]["value"]},
            "trials": every, **result}


def replace_name(spec: Any, study_name: str) -> Any:
    from dataclasses import replace

    return replace(spec, study_name=study_name)


def write_outputs(spec: Any, doc: dict[str, Any], params: dict[str, Any]) -> None:
    """--json, --best-yaml and --html, as the local CLI writes them (same helpers)."""
    import json as _json
    from dataclasses import replace

    from trader.optimize.cli import _write, best_yaml_text

    if params.get("json_out"):
        _write(params["json_out"], _json.dumps(doc, ensure_ascii=False, indent=1, default=str))
    if params.get("best_yaml") and doc.get("best"):
        b = doc["best"]
        if "windows" in doc:
            last = doc["windows"][-1]
            wspec = replace(spec, start=last["train"]["start"], end=last["train"]["end"])
            note = f"walk-forward: the last window's winner (train {wspec.start} → {wspec.end})"
            _write(params["best_yaml"], best_yaml_text(wspec, b["params"], b["value"], note))
        else:
            _write(params["best_yaml"], best_yaml_text(spec, b["params"], b["value"],
                                                       f"best trial #{doc['best_trial']}"))
    if params.get("html"):
        from trader.optimize.report import write_report

        write_report(params["html"], doc)


def build_parser() -> Any:
    """`python -m trader optimize`'s parser (trader/optimize/cli.py), plus the flow's --html."""
    from trader.optimize.cli import build_parser as optimize_parser

    p = optimize_parser("python -m flows.optimize")
    if not any(a.dest == "html" for a in p._actions):  # until trader/optimize/cli.py passes it on
        p.add_argument("--html", metavar="OUT.html", help="write the HTML report of the run")
    return p


def main(argv: list[str] | None = None) -> int:
    from trader.marketdata.candles import MarketDataError
    from trader.optimize.cli import build_spec, render_leaderboard, render_windows
    from trader.optimize.space import SpaceError
    from trader.optimize.study import StorageError, check_spec
    from trader.strategy.config import StrategyConfigError

    args = build_parser().parse_args(argv)
    # flow parameters are JSON values: the parser's typed values (Decimal KRW, paths) go as text
    params = {("json_out" if k == "json" else k): (v if v is None or isinstance(v, (str, int, float, bool))
                                                   else str(v))
              for k, v in vars(args).items() if k != "local"}
    try:  # every input error before Prefect or Dask start, with the entry it is about
        spec = build_spec(args)
        check_spec(spec)
        if args.walk_forward:
            from trader.optimize.walkforward import parse_walk_forward

            parse_walk_forward(args.walk_forward)
        elif args.anchored:
            raise SpaceError("anchored: only with --walk-forward")
    except (SpaceError, StorageError, StrategyConfigError, MarketDataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    doc = optimize(**params)
    if doc.get("windows"):
        print(render_windows(doc))
    else:
        print(render_leaderboard(doc.get("leaderboard") or [], spec.objective))
    c = doc["cluster"]
    print(f"{c['trials']} trials in {c['batches']} batches on {c['slots']} Dask slots: {c['wall_s']:.1f} s, "
          f"overhead {100 * c['overhead_share']:.1f} % of slot time "
          f"(cluster reached and warmed in {c['connect_s']:.1f} s; "
          f"{100 * c['run_overhead_share']:.1f} % counting that)"
          f"; study {spec.study_name} in {spec.storage}")
    return 0 if doc.get("best") else 1


if __name__ == "__main__":
    sys.exit(main())
