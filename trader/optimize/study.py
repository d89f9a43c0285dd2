"""Optuna studies over the backtest: the spec a worker needs, study creation, workers, results.

A study lives in Optuna's RDB storage (`sqlite:///var/optuna.db` by default; a PostgreSQL URL
when several machines share one study), never in the product's database: Optuna brings its own
`alembic_version` table and the product's migrations then fail, so a storage URL naming the
product's database is refused. The sampler is TPE seeded with the spec's seed; the strategy as
given is enqueued as trial 0 so that the user sees whether the search beat it. A trial whose
point was already run (stepped and categorical spaces are small) reuses that result instead of
backtesting again (`repeat_of`); one with unmet constraints, an invalid strategy or too few
trades is pruned.

Reproducibility: one worker (`run_worker(spec, n)` with worker=0, on a new study) with the same
seed proposes the same trials in the same order and so finds the same best parameters. With
several workers each batch samples with its own seed (worker index, trials done) and they share
the finished trials through the storage in whatever order they finish, so the trials (and
possibly the best) can differ run to run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

from trader.optimize.objectives import objective
from trader.optimize.space import Space, SpaceError, base_values, load_space, satisfied, suggest
from trader.optimize.trial import evaluate, kept

DEFAULT_STORAGE = "sqlite:///var/optuna.db"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
Callback = Callable[[optuna.Study, FrozenTrial], None]


class StorageError(ValueError):
    """A storage URL the study must not use (the product's own database)."""


@dataclass(frozen=True)
class OptimizeSpec:
    """Everything a worker needs, as plain picklable data (the strategy and space as mappings)."""

    strategy: dict
    space: dict
    data: str
    start: str | None = None  # KST unless it carries an offset; start ≤ candle start
    end: str | None = None  # exclusive
    seed: int = 0  # trade synthesis, the simulated book and the sampler
    objective: str = "return_pct"
    min_trades: int = 3
    trials: int = 100
    krw: str = "10000000"
    ticks_per_candle: int = 8
    storage: str = DEFAULT_STORAGE
    study_name: str = ""

    def __post_init__(self) -> None:
        if not self.study_name:
            object.__setattr__(self, "study_name", default_study_name(self))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_study_name(spec: OptimizeSpec) -> str:
    """A name from what defines the search (not the trial count: rerunning with more continues it)."""
    key = {k: v for k, v in asdict(spec).items() if k not in ("trials", "storage", "study_name")}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"optimize-{digest}"


_SPACES: dict[str, Space] = {}


def space_of(spec: OptimizeSpec) -> Space:
    """The spec's checked space (once per process); SpaceError names the bad entry."""
    key = json.dumps([spec.space, spec.strategy], sort_keys=True, default=str)
    if key not in _SPACES:
        _SPACES[key] = load_space(spec.space, spec.strategy)
    return _SPACES[key]


def check_spec(spec: OptimizeSpec) -> Space:
    """Everything that can be wrong before the first trial: space, objective, counts, storage."""
    space = space_of(spec)
    objective(spec.objective)
    if spec.min_trades < 0:
        raise SpaceError(f"min_trades: must be ≥ 0, got {spec.min_trades}")
    if spec.trials < 1:
        raise SpaceError(f"trials: must be ≥ 1, got {spec.trials}")
    for p in space.params:
        if p.choices is None:
            continue
        try:
            from trader.optimize.space import get_path

            value = get_path(spec.strategy, p.path)
        except (KeyError, IndexError):
            continue
        if value not in p.choices:
            raise SpaceError(f"{p.name}: the strategy's value {value!r} is not among the choices "
                             "(trial 0 runs the strategy as given)")
    check_storage(spec.storage)
    return space


def _db_identity(url: str) -> tuple:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        db = u.database or ""
        return ("sqlite", str(Path(db).resolve()) if db and db != ":memory:" else db)
    return (backend, (u.host or "localhost").lower(), u.port, u.database)


def check_storage(storage: str) -> None:
    """Refuse the product's database (TRADER_DATABASE_URL / settings) as Optuna's storage."""
    from trader.config import load_settings

    product = load_settings().db_url
    try:
        same = _db_identity(storage) == _db_identity(product)
    except Exception as exc:  # sqlalchemy's URL parser raises several types
        raise StorageError(f"storage: cannot parse {storage!r}: {exc}") from None
    if same:
        raise StorageError(
            f"storage: {storage!r} is the product's own database; Optuna adds its own alembic_version "
            "table there and the product's migrations then fail — use e.g. sqlite:///var/optuna.db")


def _prepare_storage(storage: str) -> None:
    if storage.startswith("sqlite:///"):
        path = storage.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


SQLITE_BUSY_S = 60  # SQLite: a worker waits this long for another's write lock instead of failing
_STORAGES: dict[str, optuna.storages.RDBStorage] = {}


def storage_of(spec: OptimizeSpec) -> optuna.storages.RDBStorage:
    """The spec's RDB storage, once per process (several workers may share one SQLite file)."""
    url = spec.storage
    if url not in _STORAGES:
        _prepare_storage(url)
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs = {"connect_args": {"timeout": SQLITE_BUSY_S}}
        _STORAGES[url] = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    return _STORAGES[url]


def create_study(spec: OptimizeSpec) -> optuna.Study:
    """Create (or open) the study; a new one gets the strategy as given as trial 0."""
    space = check_spec(spec)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage_of(spec), study_name=spec.study_name,
                                sampler=optuna.samplers.TPESampler(seed=spec.seed),
                                direction="maximize", load_if_exists=True)
    if not study.trials:
        study.set_user_attr("spec", spec.to_dict())
        study.enqueue_trial(base_values(space, spec.strategy), user_attrs={"as_given": True})
    return study


def _same_point(study: optuna.Study, params: dict, number: int) -> FrozenTrial | None:
    """An earlier finished trial of exactly these parameters (a backtest is deterministic)."""
    for t in study.get_trials(deepcopy=False, states=FINISHED):
        if t.number != number and t.user_attrs.get("params") == params and "repeat_of" not in t.user_attrs:
            return t
    return None


def _objective(spec: OptimizeSpec, space: Space) -> Callable[[optuna.Trial], float]:
    def run(trial: optuna.Trial) -> float:
        params = suggest(trial, space)
        as_given = bool(trial.user_attrs.get("as_given"))
        if not as_given and not satisfied(space, params, spec.strategy):
            trial.set_user_attr("reason", "constraints not met")
            raise optuna.TrialPruned()
        trial.set_user_attr("params", params)  # the values evaluated (stepped floats rounded)
        prior = _same_point(trial.study, params, trial.number)
        if prior is not None:  # the sampler came back to a point already run: same engine, same result
            trial.set_user_attr("repeat_of", prior.number)
            for key in ("trades", "figures", "reason"):
                if key in prior.user_attrs:
                    trial.set_user_attr(key, prior.user_attrs[key])
            if prior.state == TrialState.COMPLETE and prior.value is not None:
                return prior.value
            raise optuna.TrialPruned()
        ev = evaluate(spec, params)
        trial.set_user_attr("trades", ev.trades)
        trial.set_user_attr("figures", kept(ev.summary))
        if ev.value is None:
            trial.set_user_attr("reason", ev.reason)
            raise optuna.TrialPruned()
        return ev.value

    return run


def load_study(spec: OptimizeSpec) -> optuna.Study:
    """The spec's existing study (no sampler: for reading results)."""
    return optuna.load_study(study_name=spec.study_name, storage=storage_of(spec))


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_worker(spec: OptimizeSpec, n_trials: int, *, worker: int = 0,
               callbacks: Sequence[Callback] = ()) -> int:
    """Run up to `n_trials` more trials of the spec's study (created first by `create_study`).

    Stops early once the study has `spec.trials` finished (complete or pruned) trials, counted
    over every worker. `worker` (and the number of trials already finished) offsets the sampler's
    seed so that parallel workers and later batches do not propose the same points. Returns how
    many trials this call ran.
    """
    space = check_spec(spec)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    probe = optuna.load_study(study_name=spec.study_name, storage=storage_of(spec))
    done = finished(probe)
    # a batch's sampler seed: the spec's for the first batch of worker 0 (so one worker run from
    # an empty study is reproducible), distinct for every other worker and later batch (two
    # batches seeded alike would propose the same random start-up points)
    seed = spec.seed + worker * 1_000_003 + done
    study = optuna.load_study(study_name=spec.study_name, storage=storage_of(spec),
                              sampler=optuna.samplers.TPESampler(seed=seed))
    remaining = spec.trials - done
    if remaining <= 0 or n_trials <= 0:
        return 0
    ran = 0

    def count(_study: optuna.Study, _trial: FrozenTrial) -> None:
        nonlocal ran
        ran += 1

    stop = MaxTrialsCallback(spec.trials, states=FINISHED)
    study.optimize(_objective(spec, space), n_trials=min(n_trials, remaining),
                   callbacks=[count, stop, *callbacks], gc_after_trial=False)
    return ran


def trial_row(t: FrozenTrial) -> dict[str, Any]:
    """A finished trial as the JSON lists it."""
    fig = t.user_attrs.get("figures") or {}
    params = dict(t.user_attrs.get("params") or t.params)
    return {"number": t.number, "state": t.state.name.lower(), "value": t.value, "params": params,
            "trades": t.user_attrs.get("trades", 0), "as_given": bool(t.user_attrs.get("as_given")),
            "reason": t.user_attrs.get("reason"), "repeat_of": t.user_attrs.get("repeat_of"),
            **{k: fig.get(k) for k in ("return_pct", "max_drawdown_pct", "sharpe", "fingerprint")}}


def trials(study: optuna.Study) -> list[dict[str, Any]]:
    return [trial_row(t) for t in study.get_trials(deepcopy=False, states=FINISHED)]


def leaderboard(study: optuna.Study, k: int = 10) -> list[dict[str, Any]]:
    """The k best scored trials, best first (ties: the earlier trial first)."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    done.sort(key=lambda t: (-t.value, t.number))
    return [{"rank": i + 1, **trial_row(t)} for i, t in enumerate(done[:k])]


def best(study: optuna.Study) -> dict[str, Any]:
    """{params, value, number} of the best scored trial; ValueError when none was scored."""
    board = leaderboard(study, 1)
    if not board:
        raise ValueError("no trial was scored (every trial was pruned: too few trades, constraints, "
                         "or an undefined objective)")
    top = board[0]
    return {"params": top["params"], "value": top["value"], "number": top["number"]}
