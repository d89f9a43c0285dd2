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

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from prefect import flow, get_run_logger, task

from flows.hooks import mail_failure_alert
from flows.optimize_artifacts import Publisher
from flows.optimize_batches import BatchStats, OptimizeTaskRunner, local_cluster_kwargs, run_batches

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


@contextlib.contextmanager
def prefect_api() -> Iterator[None]:
    """Offline Prefect settings (as the demo has them). With no server named, a temporary one
    (home var/prefect) whose URL the run and its Dask workers share: left to themselves, each
    worker process would start a temporary server of its own, its task runs invisible to the flow's."""
    from deployments.env import OFFLINE_ENV

    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from trader.config import load_settings

    os.environ.setdefault("PREFECT_HOME", str((load_settings().var_dir / "prefect").resolve()))
    server = SubprocessASGIServer()
    server.start(timeout=int(OFFLINE_ENV["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"]))
    os.environ["PREFECT_API_URL"] = server.api_url  # inherited by the LocalCluster's processes
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield
    finally:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)  # the run's last log lines, while the server is still there
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()


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
    with prefect_api():
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
