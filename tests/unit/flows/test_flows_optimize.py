"""The optimize flow's own parts: batch sizing, overhead share, runner choice, artifacts, CLI errors."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
from optuna.distributions import FloatDistribution

from flows import optimize as fo
from flows import optimize_artifacts as fa
from flows import optimize_batches as fb


def test_batches_take_half_a_slots_share_but_enough_to_keep_the_overhead_down() -> None:
    # half of each slot's even share: 200 left on 2 slots → 50, then 150 left → 38 (they shrink)
    assert fb.plan_batch(200, 2, trial_s=1.1, overhead_s=0.5) == 50
    assert fb.plan_batch(150, 2, trial_s=1.1, overhead_s=0.5) == 38
    # ... but at least what keeps 0.2 s of overhead at 2.5 % of 0.1 s trials: 78 (77 would not)
    assert fb.plan_batch(100, 4, trial_s=0.1, overhead_s=0.2) == 25  # capped by the even share
    assert fb.plan_batch(400, 2, trial_s=0.1, overhead_s=0.2) == 100
    assert fb.plan_batch(200, 2, trial_s=0.1, overhead_s=0.2) == 78
    assert 0.2 / (0.2 + 78 * 0.1) <= 0.025 < 0.2 / (0.2 + 77 * 0.1)
    # at a 5 % target: 38 trials keep it at 5 %
    assert fb.plan_batch(200, 2, trial_s=0.1, overhead_s=0.2, target=0.05) == 50
    assert fb.plan_batch(120, 2, trial_s=0.1, overhead_s=0.2, target=0.05) == 38
    # a short study: 12 trials of 0.1 s on 2 free slots → 6 each, not 6 then 3
    assert fb.plan_batch(12, 2, trial_s=0.1, overhead_s=0.5, free_slots=2) == 6
    assert fb.plan_batch(6, 2, trial_s=0.1, overhead_s=0.5, free_slots=1) == 6
    # never more than what is left, at least one
    assert fb.plan_batch(3, 2, trial_s=0.1, overhead_s=0.2) == 2
    assert fb.plan_batch(1, 4, trial_s=5.0, overhead_s=0.0) == 1
    assert fb.plan_batch(0, 2, trial_s=0.1, overhead_s=0.2) == 0


def test_overhead_share_is_slot_time_outside_run_worker() -> None:
    stats = fb.BatchStats(slots=2, batches=4, trials=200, busy_s=38.0, wall_s=20.0, connect_s=5.0)
    assert stats.overhead_share == pytest.approx(1 - 38 / 40)
    assert stats.run_overhead_share == pytest.approx(1 - 38 / 50)
    assert stats.trial_s == pytest.approx(0.19)
    assert fb.BatchStats().overhead_share == 0.0 and fb.BatchStats().trial_s == fb.FIRST_TRIAL_S
    assert fb.BatchStats(probe_s=0.7).trial_s == 0.7  # before a batch has measured, the warm-up probe


def test_runner_takes_the_run_parameters_address_or_worker_count() -> None:
    runner = fb.OptimizeTaskRunner(cluster_kwargs=fb.local_cluster_kwargs(2))
    runner.choose({"dask_address": "tcp://127.0.0.1:8786", "workers": 5})
    assert runner.address == "tcp://127.0.0.1:8786" and runner.cluster_kwargs == {}
    local = fb.OptimizeTaskRunner(cluster_kwargs=fb.local_cluster_kwargs(2))
    local.choose({"workers": 3})
    assert local.address is None
    assert local.cluster_kwargs == {"n_workers": 3, "threads_per_worker": 1, "processes": True,
                                    "dashboard_address": None}


def test_artifact_keys_are_lowercase_dashes() -> None:
    assert fa.artifact_key("optimize", "My_Study.wf01", "7dd19d15", "leaderboard") == (
        "optimize-my-study-wf01-7dd19d15-leaderboard")


def _study() -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    dist = {"exits.stop_loss": FloatDistribution(0.005, 0.05)}
    for number, (value, sl) in enumerate([(1.5, 0.01), (None, 0.02), (3.25, 0.03)]):
        attrs = {"trades": 4 + number, "figures": {"return_pct": value, "max_drawdown_pct": -2.0},
                 "as_given": number == 0}
        state = optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.PRUNED
        study.add_trial(optuna.trial.create_trial(params={"exits.stop_loss": sl}, distributions=dist,
                                                  value=value, state=state, user_attrs=attrs))
    return study


def test_leaderboard_markdown_ranks_scored_trials_and_counts_the_pruned_as_done() -> None:
    spec = SimpleNamespace(study_name="s1", trials=10, objective="return_pct")
    text = fa.leaderboard_markdown(_study(), spec, started=0.0)
    lines = text.splitlines()
    assert lines[0].startswith("**s1** · 3/10 trials · best return_pct 3.25 · ")
    assert lines[0].endswith(" KST")
    assert lines[2] == "| # | trial | return_pct | trades | return % | MDD % | exits.stop_loss |"
    assert lines[4] == "| 1 | 2 | 3.25 | 6 | 3.25 | -2 | 0.03 |"
    assert lines[5] == "| 2 | 0 (as given) | 1.5 | 4 | 1.5 | -2 | 0.01 |"
    assert len(lines) == 6  # the pruned trial is not ranked


def test_windows_markdown_lists_spans_and_both_samples() -> None:
    rows = [{"train": {"start": "2024-01-01T00:00:00+09:00", "end": "2024-01-08T00:00:00+09:00"},
             "test": {"start": "2024-01-08T00:00:00+09:00", "end": "2024-01-15T00:00:00+09:00"},
             "best_params": {"b": 2, "a": 0.5}, "in_sample": {"value": 1.25, "return_pct": 1.25},
             "out_of_sample": {"return_pct": -0.5, "trades": 3}}]
    lines = fa.windows_markdown(rows, "sharpe").splitlines()
    assert lines[0].startswith("| window | train (KST) | test (KST) | IS sharpe |")
    assert lines[2] == ("| 1 | 2024-01-01T00:00:00+09:00 → 2024-01-08T00:00:00+09:00 "
                        "| 2024-01-08T00:00:00+09:00 → 2024-01-15T00:00:00+09:00 "
                        "| 1.25 | 1.25 | -0.5 | 3 | a=0.5, b=2 |")


def test_cli_reports_a_bad_space_entry_before_starting_anything(tmp_path, capsys) -> None:
    space = tmp_path / "bad.space.yaml"
    space.write_text("params:\n  exits.stop_loss: {low: 0.05, high: 0.01}\n", encoding="utf-8")
    code = fo.main(["--strategy", "trader/strategy/examples/demo.yaml", "--space", str(space),
                    "--data", "data/KRW-ETH_15m_2024.parquet", "--trials", "5",
                    "--storage", f"sqlite:///{tmp_path}/o.db"])
    err = capsys.readouterr().err
    assert code == 2 and "exits.stop_loss" in err and err.startswith("error: ")
    assert not (tmp_path / "o.db").exists()  # no study was created


def test_the_flows_parser_is_the_optimize_commands_plus_html() -> None:
    from trader.optimize.cli import build_parser

    ours = {a.dest for a in fo.build_parser()._actions}
    theirs = {a.dest for a in build_parser()._actions}
    assert ours - theirs <= {"html"} and theirs <= ours and "html" in ours


def test_flow_parameters_go_through_the_parser_and_make_output_folders(tmp_path) -> None:
    params = {"strategy": "s.yaml", "space": "sp.yaml", "data": "d.parquet", "trials": 7, "seed": 2,
              "start": "2024-01-01", "krw": "5000000", "json_out": str(tmp_path / "new" / "r.json"),
              "html": str(tmp_path / "new2" / "r.html"), "anchored": False}
    ns = fo._namespace(params)
    assert (ns.trials, ns.seed, ns.json, ns.html) == (7, 2, params["json_out"], params["html"])
    assert (tmp_path / "new").is_dir() and (tmp_path / "new2").is_dir()
    with pytest.raises(ValueError, match="--trials"):
        fo._namespace({**params, "trials": 0})
