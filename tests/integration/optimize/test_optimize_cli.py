"""`python -m trader optimize --local` end to end on shipped data: seeding, trial 0, best YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from trader.cli import main
from trader.optimize import cache
from trader.optimize.space import base_values, load_space

ROOT = Path(__file__).resolve().parents[3]
STRATEGY = ROOT / "trader" / "strategy" / "examples" / "demo.yaml"
SPACE = ROOT / "trader" / "strategy" / "examples" / "demo.space.yaml"
DATA = ROOT / "data" / "KRW-ETH_15m_2024.parquet"
PERIOD = ["--from", "2024-01-01", "--to", "2024-01-22"]
FILES = ["--strategy", str(STRATEGY), "--space", str(SPACE), "--data", str(DATA)]


@pytest.fixture(autouse=True)
def var_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("TRADER_DATABASE_URL", raising=False)
    cache.forget()
    yield tmp_path / "var"
    cache.forget()


def _optimize(tmp_path: Path, name: str, *extra: str, trials: int = 8, seed: int = 5) -> dict:
    out = tmp_path / f"{name}.json"
    code = main(["optimize", "--local", *FILES,
                 *PERIOD, "--trials", str(trials), "--seed", str(seed), "--min-trades", "1",
                 "--storage", f"sqlite:///{tmp_path / name}.db", "--json", str(out), *extra])
    assert code == 0
    return json.loads(out.read_text(encoding="utf-8"))


def _backtest(tmp_path: Path, strategy: Path, seed: int) -> dict:
    out = tmp_path / "bt.json"
    assert main(["backtest", "--strategy", str(strategy), "--data", str(DATA), *PERIOD, "--seed", str(seed),
                 "--json", str(out)]) == 0
    return json.loads(out.read_text(encoding="utf-8"))["summary"]


def test_same_seed_same_trials_and_best(tmp_path):
    a = _optimize(tmp_path, "a")
    b = _optimize(tmp_path, "b")
    assert [t["params"] for t in a["trials"]] == [t["params"] for t in b["trials"]]
    assert [t["value"] for t in a["trials"]] == [t["value"] for t in b["trials"]]
    assert a["best"] == b["best"]
    assert len(a["trials"]) == 8
    c = _optimize(tmp_path, "c", seed=6)
    assert [t["params"] for t in c["trials"][1:]] != [t["params"] for t in a["trials"][1:]]


def test_first_trial_is_the_strategy_as_given_and_best_yaml_reproduces(tmp_path, capsys):
    best_yaml = tmp_path / "best.yaml"
    doc = _optimize(tmp_path, "s", "--best-yaml", str(best_yaml), trials=10, seed=2)
    first = doc["trials"][0]
    strategy = yaml.safe_load(STRATEGY.read_text(encoding="utf-8"))
    assert first["number"] == 0 and first["as_given"]
    assert first["params"] == base_values(load_space(SPACE, strategy), strategy)
    plain = _backtest(tmp_path, STRATEGY, seed=2)
    assert first["value"] == plain["return_pct"]
    assert first["trades"] == plain["trades"]
    assert first["fingerprint"] == plain["fingerprint"]
    # the best strategy file, backtested, gives best.value exactly (objective return_pct)
    again = _backtest(tmp_path, best_yaml, seed=2)
    assert again["return_pct"] == doc["best"]["value"]
    assert doc["best"]["value"] == max(t["value"] for t in doc["trials"] if t["value"] is not None)
    assert "reproduce with" in best_yaml.read_text(encoding="utf-8")
    out = capsys.readouterr()
    assert "(* = the strategy as given)" in out.out
    assert "trials 10/10" in out.err


def test_sharpe_objective_best_yaml_reproduces(tmp_path):
    best_yaml = tmp_path / "best.yaml"
    doc = _optimize(tmp_path, "sh", "--objective", "sharpe", "--best-yaml", str(best_yaml), trials=6, seed=1)
    assert _backtest(tmp_path, best_yaml, seed=1)["sharpe"] == doc["best"]["value"]


def test_too_few_trades_prunes_so_doing_nothing_cannot_win(tmp_path, capsys):
    out = tmp_path / "m.json"
    code = main(["optimize", "--local", *FILES,
                 *PERIOD, "--trials", "3", "--seed", "0", "--min-trades", "1000",
                 "--storage", f"sqlite:///{tmp_path}/m.db", "--json", str(out)])
    assert code == 1
    assert "no trial was scored" in capsys.readouterr().err
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["best"] is None
    assert [t["state"] for t in doc["trials"]] == ["pruned"] * 3
    assert all("< min_trades 1000" in t["reason"] for t in doc["trials"])


@pytest.mark.parametrize("space,entry", [
    ({"params": {"exits.take_profit[0].gian": {"low": 0.01, "high": 0.02}}},
     "params.exits.take_profit[0].gian"),
    ({"params": {"exits.stop_loss": {"low": 0.05, "high": 0.01}}}, "params.exits.stop_loss: low > high"),
    ({"params": {"exits.take_profit[0].gain": {"low": 0.01, "high": 0.02}},
      "constraints": ["exits.take_profit[0].gain > 0.5"]}, "constraints[0]"),
])
def test_bad_space_exits_2_before_any_trial(tmp_path, capsys, space, entry):
    path = tmp_path / "bad.space.yaml"
    path.write_text(yaml.safe_dump(space), encoding="utf-8")
    db = tmp_path / "bad.db"
    code = main(["optimize", "--local", "--strategy", str(STRATEGY), "--space", str(path),
                 "--data", str(DATA),
                 *PERIOD, "--trials", "3", "--seed", "0", "--storage", f"sqlite:///{db}"])
    assert code == 2
    assert entry in capsys.readouterr().err
    assert not db.exists()  # no study, no trial


def test_unknown_objective_exits_2(tmp_path, capsys):
    code = main(["optimize", "--local", *FILES,
                 "--trials", "3", "--seed", "0", "--objective", "profit",
                 "--storage", f"sqlite:///{tmp_path}/o.db"])
    assert code == 2
    assert "objective: unknown name 'profit'" in capsys.readouterr().err


def test_without_local_needs_the_flow_or_says_so(tmp_path, capsys, monkeypatch):
    from trader.optimize import cli

    monkeypatch.setattr(cli, "FLOW_MODULE", tmp_path / "absent.py")
    code = main(["optimize", *FILES, "--trials", "3", "--seed", "0"])
    assert code == 2
    assert "flows/optimize.py" in capsys.readouterr().err


def test_later_batches_and_other_workers_do_not_repeat_points(tmp_path):
    from trader.optimize.study import OptimizeSpec, create_study, run_worker, trials

    spec = OptimizeSpec(yaml.safe_load(STRATEGY.read_text(encoding="utf-8")),
                        yaml.safe_load(SPACE.read_text(encoding="utf-8")), str(DATA),
                        "2024-01-01", "2024-01-08", seed=4, min_trades=0, trials=10,
                        storage=f"sqlite:///{tmp_path}/batches.db", study_name="batches")
    create_study(spec)
    assert run_worker(spec, 3) == 3
    assert run_worker(spec, 3) == 3  # a second batch of the same worker
    assert run_worker(spec, 3, worker=1) == 3
    assert run_worker(spec, 3, worker=1) == 1  # the study stops at spec.trials
    points = [tuple(sorted(t["params"].items())) for t in trials(create_study(spec))]
    assert len(points) == 10
    assert len(set(points)) == 10


def test_a_point_already_run_is_not_backtested_again(tmp_path, monkeypatch):
    import trader.optimize.study as study_module
    from trader.optimize.study import OptimizeSpec, create_study, run_worker, trials

    calls: list[dict] = []
    real = study_module.evaluate

    def counting(spec, params, **kw):
        calls.append(params)
        return real(spec, params, **kw)

    monkeypatch.setattr(study_module, "evaluate", counting)
    space = {"params": {"cooldown.max_entries_per_day": {"choices": [1, 3]}}}
    spec = OptimizeSpec(yaml.safe_load(STRATEGY.read_text(encoding="utf-8")), space, str(DATA),
                        "2024-01-01", "2024-01-08", seed=0, min_trades=0, trials=6,
                        storage=f"sqlite:///{tmp_path}/repeat.db", study_name="repeat")
    create_study(spec)
    assert run_worker(spec, 6) == 6
    assert sorted(c["cooldown.max_entries_per_day"] for c in calls) == [1, 3]  # two backtests, six trials
    rows = trials(create_study(spec))
    by_point = {}
    for r in rows:
        by_point.setdefault(r["params"]["cooldown.max_entries_per_day"], set()).add(r["value"])
    assert all(len(v) == 1 for v in by_point.values())  # a repeat scores what its first run scored


def test_flow_gets_the_same_arguments():
    from trader.optimize.cli import build_parser, flow_command

    argv = ["--strategy", "s.yaml", "--space", "p.yaml", "--data", "d.parquet", "--from", "2024-01-01",
            "--trials", "50", "--seed", "7", "--objective", "sharpe", "--walk-forward", "90d:30d",
            "--anchored", "--workers", "2", "--dask-address", "tcp://10.0.0.1:8786"]
    args = build_parser().parse_args(argv)
    cmd = flow_command(args)
    assert cmd[1:3] == ["-m", "flows.optimize"]
    again = build_parser().parse_args(cmd[3:])
    assert vars(again) == vars(args)
    assert "--local" not in cmd
