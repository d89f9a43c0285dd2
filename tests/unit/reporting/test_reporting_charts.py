"""Charts: phone-sized PNGs that PIL can open, with or without the Hangul font, with or without trades."""

from __future__ import annotations

import contextlib
import warnings
from datetime import timedelta
from decimal import Decimal

import numpy as np
from PIL import Image

from trader.reporting import charts
from trader.reporting.charts import decimate, render_charts
from trader.reporting.fonts import BUNDLED_FONT, chart_rc, hangul_family
from trader.reporting.inputs import ReportInputs
from trader.reporting.metrics import compute_metrics

from .conftest import DAY, case_inputs


def test_bundled_font_has_hangul() -> None:
    from matplotlib.font_manager import FontProperties, get_font

    assert BUNDLED_FONT.is_file()
    assert hangul_family() == "NanumGothic"
    font = get_font(FontProperties(fname=str(BUNDLED_FONT)).get_file())
    assert font.get_char_index(ord("익")) != 0  # the glyph exists


def test_missing_font_falls_back_to_english(tmp_path, monkeypatch) -> None:
    import trader.reporting.fonts as fonts

    monkeypatch.setattr(fonts, "_KNOWN_HANGUL_FAMILIES", ())
    assert fonts.hangul_family.__wrapped__(str(tmp_path / "missing.ttf")) is None
    monkeypatch.setattr(fonts, "hangul_family", lambda _path=None: None)
    rc, lang = chart_rc("ko")
    assert lang == "en" and rc["font.sans-serif"] == ["DejaVu Sans"]
    metrics = compute_metrics(case_inputs(), period="day", day=DAY)
    # let missing-glyph warnings through, and make them errors: tofu would fail the test
    monkeypatch.setattr(charts, "quiet_glyph_warnings", contextlib.nullcontext)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pngs, chart_lang = render_charts(metrics, tmp_path, "ko")
    assert chart_lang == "en" and len(pngs) == 4


def test_charts_render_quietly_and_phone_sized(tmp_path, monkeypatch) -> None:
    metrics = compute_metrics(case_inputs(), period="day", day=DAY)
    monkeypatch.setattr(charts, "quiet_glyph_warnings", contextlib.nullcontext)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph would warn: fail instead
        pngs, lang = render_charts(metrics, tmp_path, "ko")
    assert lang == "ko"
    assert set(pngs) == {"equity", "price", "daily", "reasons"}
    for path in pngs.values():
        with Image.open(path) as img:
            assert img.format == "PNG" and img.size[0] == 1080 and 400 <= img.size[1] <= 1400


def test_charts_of_a_quiet_day_and_of_no_data(tmp_path) -> None:
    quiet = compute_metrics(case_inputs(), period="day", day=DAY + timedelta(days=1))
    pngs, _ = render_charts(quiet, tmp_path / "quiet", "en")
    empty = compute_metrics(ReportInputs(fills=[], starting_equity=Decimal(1)), period="week", day=DAY)
    pngs2, _ = render_charts(empty, tmp_path / "empty", "ko")
    for path in [*pngs.values(), *pngs2.values()]:
        with Image.open(path) as img:
            img.verify()


def test_decimate_keeps_extremes() -> None:
    ts = np.arange(100_000, dtype="int64")
    values = np.sin(ts / 500.0)
    values[31_337] = -5.0
    t2, v2 = decimate(ts, values, 1000)
    assert len(t2) <= 1000 and v2.min() == -5.0 and v2.max() == values.max()
    assert np.all(np.diff(t2) > 0)
