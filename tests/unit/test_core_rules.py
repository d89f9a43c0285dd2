"""Upbit tick table (2025-07-31), rounding, volume quantisation and number formatting."""

from decimal import Decimal as D

import pytest

from trader.upbit.rules import (
    format_decimal,
    is_on_tick,
    quantize_volume,
    round_price,
    tick_size,
    tick_size_f,
)


@pytest.mark.parametrize(
    ("price", "tick"),
    [
        ("160594000", "1000"),
        ("2000000", "1000"),
        ("1000000", "1000"),  # 500 before 2025-07-31
        ("999999", "500"),
        ("500000", "500"),
        ("100000", "100"),
        ("99999", "50"),
        ("50000", "50"),
        ("10000", "10"),
        ("9999", "5"),
        ("5000", "5"),
        ("4999", "1"),
        ("100", "1"),
        ("99.9", "0.1"),
        ("10", "0.1"),
        ("9.99", "0.01"),
        ("0.5", "0.001"),
        ("0.05", "0.0001"),
        ("0.005", "0.00001"),
        ("0.0005", "0.000001"),
        ("0.00005", "0.0000001"),
        ("0.000005", "0.00000001"),
    ],
)
def test_tick_table_matches_upbit_2025_07_31(price: str, tick: str) -> None:
    assert tick_size(D(price)) == D(tick)
    assert tick_size_f(float(price)) == float(tick)


def test_round_price_directions_and_band_edges() -> None:
    assert round_price(D("160594321")) == D("160594000")
    assert round_price(D("160594321"), "up") == D("160595000")
    assert round_price(D("999,999".replace(",", "")), "up") == D("1000000")
    assert round_price(D("7502"), "nearest") == D("7500")
    assert round_price(D("7503"), "nearest") == D("7505")
    assert is_on_tick(round_price(D("123456.7")))


def test_is_on_tick() -> None:
    assert is_on_tick(D("3071000"))
    assert not is_on_tick(D("3071500"))
    assert is_on_tick(D("9995"))
    assert not is_on_tick(D("9993"))
    assert not is_on_tick(D("0"))


def test_quantize_volume_truncates_to_8_decimals() -> None:
    assert quantize_volume(D("0.123456789")) == D("0.12345678")
    assert quantize_volume(D("1")) == D("1.00000000")


@pytest.mark.parametrize(
    ("value", "text"),
    [(D("0.00001"), "0.00001"), (D("1E-8"), "0.00000001"), (D("1000000"), "1000000.0"),
     (D("0.0005"), "0.0005"), (D("15584.9886"), "15584.9886"), (10, "10.0")],
)
def test_format_decimal_never_uses_exponent(value: D, text: str) -> None:
    assert format_decimal(value) == text
