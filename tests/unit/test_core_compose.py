"""The composition root's decisions that need no exchange: times, refusals, venues, windows, ledgers."""

from __future__ import annotations

from pathlib import Path

import pytest

from trader import compose
from trader.config import SIM_ACCESS_KEY, Settings
from trader.marketdata.candles import load_frame, slice_time

DATA = Path(__file__).resolve().parents[2] / "data" / "KRW-ETH_15m_2024.parquet"


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2024-01-22T09:00", 1705881600000),  # no offset: KST
        ("2024-01-22T09:00:00+09:00", 1705881600000),
        ("2024-01-22T00:00:00Z", 1705881600000),
        ("2024-01-22T00:00:00.250+00:00", 1705881600250),
    ],
)
def test_market_times_without_an_offset_are_kst(text: str, ms: int) -> None:
    assert compose.parse_market_time(text) == ms


def test_a_bad_time_names_the_option() -> None:
    with pytest.raises(compose.ComposeError, match=r"--until-ts: 'tomorrow' is not an ISO 8601 time"):
        compose.parse_market_time("tomorrow", "--until-ts")


def test_simulator_options_on_a_live_run_are_refused_by_name() -> None:
    assert compose.paper_only_problem([]) is None
    one = compose.paper_only_problem(["--sim-url"])
    assert one is not None and one.startswith("--sim-url is for paper runs") and "LIVE" in one
    two = compose.paper_only_problem(["--krw", "--lockstep"], "paper=True")
    assert two is not None and two.startswith("--krw, --lockstep are") and "add paper=True" in two


def test_replay_speed_and_the_free_running_warning() -> None:
    assert compose.PaperSim("KRW-ETH").replay_speed == "1"
    assert compose.PaperSim("KRW-ETH", lockstep=True).replay_speed == "max"
    assert compose.PaperSim("KRW-ETH", lockstep=True, speed="600").replay_speed == "600"
    assert compose.PaperSim("KRW-ETH", speed="max").free_running_at_max
    assert compose.PaperSim("KRW-ETH", speed="MAX").free_running_at_max
    assert not compose.PaperSim("KRW-ETH", speed="max", lockstep=True).free_running_at_max
    assert not compose.PaperSim("KRW-ETH", speed="600").free_running_at_max


def test_the_replay_window_holds_exactly_the_backtests_candles(tmp_path: Path) -> None:
    path = compose.replay_window(DATA, "2024-01-01T09:00", "2024-01-22T09:00", tmp_path)
    _kind, got = load_frame(path)
    _kind, frame = load_frame(DATA)
    want = slice_time(frame, "2024-01-01T09:00", "2024-01-22T09:00")
    assert len(got) == 21 * 96
    assert got.equals(want)
    # the end is exclusive, as `backtest --to`: the last candle starts 15 minutes before it
    assert int(got["ts_ms"].iloc[0]) == compose.parse_market_time("2024-01-01T09:00")
    assert int(got["ts_ms"].iloc[-1]) == compose.parse_market_time("2024-01-22T08:45")


def test_an_empty_or_too_short_window_is_refused(tmp_path: Path) -> None:
    with pytest.raises(compose.ComposeError, match="sim_end: no market data"):
        compose.replay_window(DATA, "2030-01-01", "2030-01-02", tmp_path)
    # one candle cannot tell its interval: the simulator would synthesize other trades
    with pytest.raises(compose.ComposeError, match="too few candles"):
        compose.replay_window(DATA, "2024-01-01T09:00", "2024-01-01T09:15", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_database_choice(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path, database_url="sqlite:///live.db")
    assert compose.default_db_url(settings, paper=False, fresh=True) == "sqlite:///live.db"
    assert compose.default_db_url(settings, paper=True, fresh=False) == f"sqlite:///{tmp_path.as_posix()}/paper.db"
    fresh = compose.default_db_url(settings, paper=True, fresh=True, run_name="r1")
    assert fresh == f"sqlite:///{tmp_path.as_posix()}/paper-r1.db"


def test_live_venue_keys_come_from_the_environment_first_and_never_show(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path, upbit_access_key="ak-env-1", upbit_secret_key="sk-env-1")
    venue = compose.live_venue(settings, secret=lambda name: f"{name}-from-store")
    assert venue.keys == ("ak-env-1", "sk-env-1") and not venue.paper
    assert venue.rest_url == settings.upbit_base_url
    assert venue.private_ws_url == settings.upbit_ws_url.rstrip("/") + "/private"
    assert "sk-env-1" not in repr(venue) and "ak-env-1" not in repr(venue)
    stored = compose.live_venue(Settings(var_dir=tmp_path, upbit_access_key=None, upbit_secret_key=None),
                                secret=lambda name: f"{name}-from-store")
    assert stored.keys == ("upbit-access-key-from-store", "upbit-secret-key-from-store")


def test_live_venue_without_keys_says_which_variables_to_set(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path, upbit_access_key="ak-only", upbit_secret_key=None)
    with pytest.raises(compose.ComposeError, match=r"UPBIT_ACCESS_KEY and UPBIT_SECRET_KEY.*or use --paper"):
        compose.live_venue(settings, where=" (or .env), or use --paper")


def test_paper_venue_uses_the_simulators_dev_keys() -> None:
    venue = compose.paper_venue("http://127.0.0.1:8765/")
    assert venue.paper and venue.keys[0] == SIM_ACCESS_KEY
    assert (venue.ws_url, venue.private_ws_url) == (
        "ws://127.0.0.1:8765/websocket/v1", "ws://127.0.0.1:8765/websocket/v1/private"
    )
    assert compose.ws_urls("https://api.upbit.com")[0] == "wss://api.upbit.com/websocket/v1"
