"""The optimize flow's Dask side: the task runner, batch sizing, the batch task and its scheduler.

A batch (`optuna-batch` task) is an Optuna worker: `run_worker(spec, n)` runs n trials against
the study in its RDB storage. `run_batches` keeps one batch per worker slot in flight and sizes
each (`plan_batch`) from what the finished ones measured, so the slots' time outside run_worker
stays under 5 % of the run; `BatchStats` is what it measured. Used by flows/optimize.py.
"""

from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from prefect import task
from prefect_dask import DaskTaskRunner

TARGET_OVERHEAD = 0.05  # the share of worker-slot time allowed outside run_worker
FIRST_TRIAL_S = 0.1  # a trial's cost before any was timed (15-minute year: target ≈0.1 s)
FIRST_OVERHEAD_S = 0.5  # a batch's Prefect+Dask cost before one was measured (a task ≈ 176 ms)
POLL_S = 2.0  # how often the flow reads the study for the live leaderboard


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


def plan_batch(remaining: int, slots: int, trial_s: float, overhead_s: float,
               target: float = TARGET_OVERHEAD / 2, free_slots: int | None = None) -> int:
    """Trials for the next batch: half of each slot's even share of what is left, so batches
    shrink towards the end and the slots finish together (measured: two batches of 100 left a
    slot idle 31 s of 264); but at least enough that overhead_s is `target` of the batch's time
    (half the 5 % budget, the other half is for the uneven end), and never more than the share
    of each slot free now (`free_slots`, default all)."""
    if remaining <= 0:
        return 0
    trial_s = max(trial_s, 1e-4)
    floor_n = math.ceil(overhead_s * (1 - target) / (target * trial_s))
    slots = max(slots, 1)
    share = math.ceil(remaining / max(free_slots or slots, 1))
    half = math.ceil(remaining / (2 * slots))
    return max(1, min(remaining, share, max(floor_n, half)))


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
            n = plan_batch(left, stats.slots, stats.trial_s, overhead_s,
                           free_slots=stats.slots - len(pending))
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
            overhead_s = sum(measured) / len(measured)
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
