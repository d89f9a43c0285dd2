"""Trading flow helpers: fault injection, venue and database choice, retry back-off."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from flows import trading
from trader.config import SIM_ACCESS_KEY, Settings
from trader.domain import Tick


async def _events(n: int) -> Any:
    for i in range(n):
        yield Tick("KRW-ETH", i, 100.0, 1.0)
        yield {"type": "not-a-tick"}


async def test_failing_after_passes_n_ticks_then_raises() -> None:
    seen: list[Any] = []
    with pytest.raises(trading.InjectedFault, match="after 3 ticks"):
        async for event in trading.failing_after(_events(10), 3):
            seen.append(event)
    assert sum(isinstance(e, Tick) for e in seen) == 3


def test_paper_venue_uses_the_simulator_and_its_dev_keys(tmp_path: Any) -> None:
    settings = Settings(var_dir=tmp_path)
    venue = trading.resolve_venue(True, "http://127.0.0.1:9999", settings, "KRW-ETH")
    assert (venue.rest_url, venue.ws_url, venue.private_ws_url) == (
        "http://127.0.0.1:9999",
        "ws://127.0.0.1:9999/websocket/v1",
        "ws://127.0.0.1:9999/websocket/v1/private",
    )
    assert venue.keys[0] == SIM_ACCESS_KEY and venue.paper and venue.sim is None
    assert SIM_ACCESS_KEY not in repr(venue)  # keys never printed, not even the dev ones


def test_live_venue_takes_keys_from_the_secret_blocks_when_the_environment_has_none(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = {trading.ACCESS_KEY_BLOCK: "ak-from-block", trading.SECRET_KEY_BLOCK: "sk-from-block"}
    monkeypatch.setattr(trading, "_secret", blocks.get)
    settings = Settings(var_dir=tmp_path, upbit_access_key=None, upbit_secret_key=None)
    venue = trading.resolve_venue(False, None, settings, "KRW-ETH")
    assert venue.keys == ("ak-from-block", "sk-from-block") and not venue.paper
    assert venue.rest_url == settings.upbit_base_url and "sk-from-block" not in repr(venue)


def test_live_venue_refuses_to_start_without_keys(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trading, "_secret", lambda block: None)
    settings = Settings(var_dir=tmp_path, upbit_access_key=None, upbit_secret_key=None)
    with pytest.raises(ValueError, match=r"live trading needs Upbit API keys.*Secret blocks"):
        trading.resolve_venue(False, None, settings, "KRW-ETH")


@pytest.mark.parametrize("option", [{"sim_url": "http://127.0.0.1:9999"}, {"lockstep": True}])
def test_live_venue_refuses_simulator_options(tmp_path: Any, option: dict[str, Any]) -> None:
    settings = Settings(var_dir=tmp_path, upbit_access_key="ak-live", upbit_secret_key="sk-live")
    args: dict[str, Any] = {"sim_url": None, **option}
    with pytest.raises(ValueError, match=f"{next(iter(option))}=.*runs LIVE"):
        trading.resolve_venue(False, args["sim_url"], settings, "KRW-ETH", bool(args.get("lockstep")))


def test_database_choice(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(var_dir=tmp_path, database_url="sqlite:///live.db")
    assert trading.default_db_url(False, None, settings) == "sqlite:///live.db"
    assert trading.default_db_url(True, "http://sim", settings) == f"sqlite:///{tmp_path.as_posix()}/paper.db"
    monkeypatch.setattr(trading, "current_run", SimpleNamespace(id="run-7"))
    assert trading.default_db_url(True, None, settings) == f"sqlite:///{tmp_path.as_posix()}/paper-run-7.db"


@pytest.mark.parametrize(("attempt", "extra"), [(1, None), (2, None), (3, 50.0), (4, 290.0), (9, 290.0)])
async def test_back_off_grows_across_retries(
    monkeypatch: pytest.MonkeyPatch, attempt: int, extra: float | None
) -> None:
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)

    monkeypatch.setattr(trading, "RETRY_DELAYS_S", [10.0, 60.0, 300.0])
    monkeypatch.setattr(trading, "current_run", SimpleNamespace(run_count=attempt))
    monkeypatch.setattr(trading, "get_run_logger", lambda: SimpleNamespace(warning=lambda *a: None))
    await trading.back_off(sleep=fake_sleep)
    assert slept == ([] if extra is None else [extra])
