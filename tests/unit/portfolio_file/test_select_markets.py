"""Dynamic market selection: ranking by 24-hour traded value, filters, warnings, ties, include/exclude."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trader.portfolio_file import MarketRule, has_warning, join_listing, select_markets


def row(code: str, value: float | str | None, price: float | None = 1000.0, **extra) -> dict:
    r = {"market": code, **extra}
    if value is not None:
        r["acc_trade_price_24h"] = value
    if price is not None:
        r["trade_price"] = price
    return r


ROWS = [row("KRW-BTC", 9e11, 1.4e8), row("KRW-ETH", 5e11, 5e6), row("KRW-XRP", 7e11, 3000.0),
        row("KRW-DOGE", 2e11, 300.0), row("KRW-SHIB", 1e11, 0.02), row("BTC-ETH", 9e12, 0.05),
        row("USDT-BTC", 9e12, 100000.0)]


def test_top_n_by_value_krw_only():
    assert select_markets(ROWS, MarketRule(top=3)) == ["KRW-BTC", "KRW-XRP", "KRW-ETH"]
    assert select_markets(ROWS, MarketRule(top=100)) == ["KRW-BTC", "KRW-XRP", "KRW-ETH", "KRW-DOGE",
                                                         "KRW-SHIB"]


def test_min_price_and_min_value():
    assert select_markets(ROWS, MarketRule(top=10, min_price=100)) == ["KRW-BTC", "KRW-XRP", "KRW-ETH",
                                                                       "KRW-DOGE"]
    assert select_markets(ROWS, MarketRule(top=10, min_value_24h=5e11)) == ["KRW-BTC", "KRW-XRP", "KRW-ETH"]
    # the filters come before the cut: top 2 of what passes, not what passes of the top 2
    assert select_markets(ROWS, MarketRule(top=2, min_price=1e4)) == ["KRW-BTC", "KRW-ETH"]


def test_exclude_and_include():
    rule = MarketRule(top=2, exclude=["KRW-BTC"], include=["KRW-SHIB"])
    # SHIB is pinned (and skips the price filter); XRP fills the second slot; BTC never appears
    assert select_markets(ROWS, rule.model_copy(update={"min_price": 100})) == ["KRW-XRP", "KRW-SHIB"]
    assert select_markets(ROWS, MarketRule(top=2, include=["KRW-NOPE"])) == ["KRW-BTC", "KRW-XRP"]


def test_include_without_ticker_is_kept_last():
    rows = [*ROWS, {"market": "KRW-NEW"}]
    assert select_markets(rows, MarketRule(top=2, include=["KRW-NEW"])) == ["KRW-BTC", "KRW-NEW"]
    assert "KRW-NEW" not in select_markets(rows, MarketRule(top=10))


def test_warnings_old_and_new_format():
    rows = [row("KRW-A", 5, market_warning="CAUTION"), row("KRW-B", 4, market_event={"warning": True}),
            row("KRW-C", 3, market_event={"warning": False, "caution": {"PRICE_FLUCTUATIONS": True}}),
            row("KRW-D", 2, market_warning="NONE",
                market_event={"warning": False, "caution": {"PRICE_FLUCTUATIONS": False}}),
            row("KRW-E", 1)]
    assert [has_warning(r) for r in rows] == [True, True, True, False, False]
    assert select_markets(rows, MarketRule(top=5)) == ["KRW-D", "KRW-E"]
    assert select_markets(rows, MarketRule(top=5, exclude_warnings=False)) == ["KRW-A", "KRW-B", "KRW-C",
                                                                               "KRW-D", "KRW-E"]
    # include does not override the warning filter
    assert select_markets(rows, MarketRule(top=5, include=["KRW-A"])) == ["KRW-D", "KRW-E"]


def test_ties_break_by_code_and_strings_are_numbers():
    rows = [row("KRW-C", "100"), row("KRW-A", 100.0), row("KRW-B", "100.0"), row("KRW-Z", "1e3")]
    assert select_markets(rows, MarketRule(top=3)) == ["KRW-Z", "KRW-A", "KRW-B"]


def test_bad_or_duplicate_rows_are_skipped():
    rows = [row("KRW-A", "nan"), row("KRW-B", True), row("krw-c", 5), {"trade_price": 1},
            row("KRW-D", 3), row("KRW-D", 1e20)]
    assert select_markets(rows, MarketRule(top=5)) == ["KRW-D"]


def test_join_listing():
    markets = [{"market": "KRW-BTC", "market_event": {"warning": False}}, {"market": "KRW-ETH"}]
    tickers = [{"market": "KRW-ETH", "trade_price": 5e6, "acc_trade_price_24h": 2.0},
               {"market": "KRW-BTC", "trade_price": 1e8, "acc_trade_price_24h": 1.0}]
    joined = join_listing(markets, tickers)
    assert joined[0] == {"market": "KRW-BTC", "market_event": {"warning": False}, "trade_price": 1e8,
                         "acc_trade_price_24h": 1.0}
    assert select_markets(joined, MarketRule(top=1)) == ["KRW-ETH"]


codes = st.sampled_from([f"KRW-{c}" for c in "ABCDEFGHIJ"])
rows_st = st.lists(st.builds(row, codes, st.integers(0, 50).map(float), st.integers(0, 50).map(float)),
                   max_size=20)


@given(rows_st, st.integers(1, 12), st.lists(codes, max_size=3, unique=True))
def test_selection_properties(rows, top, exclude):
    rule = MarketRule(top=top, exclude=exclude)
    chosen = select_markets(rows, rule)
    assert len(chosen) == len(set(chosen)) <= top
    assert not set(chosen) & set(exclude)
    first = {}
    for r in rows:
        first.setdefault(r["market"], r["acc_trade_price_24h"])
    keys = [(-first[c], c) for c in chosen]
    assert keys == sorted(keys)
    # nothing left out ranks above something chosen
    left = [c for c in first if c not in chosen and c not in exclude]
    if len(chosen) == top and left and chosen:
        assert all((-first[c], c) > keys[-1] for c in left)
    else:
        assert not left
    # same input, same answer, whatever the row order
    assert select_markets(list(reversed(_dedupe(rows))), rule) == select_markets(_dedupe(rows), rule)


def _dedupe(rows):
    seen, out = set(), []
    for r in rows:
        if r["market"] not in seen:
            seen.add(r["market"])
            out.append(r)
    return out
