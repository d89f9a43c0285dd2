"""Hangul font for the charts: register the bundled NanumGothic with matplotlib, or fall back.

Matplotlib's default DejaVu Sans has no Hangul, so Korean labels would render as empty boxes
("tofu") and print one "Glyph missing" warning per character. We ship NanumGothic (SIL OFL 1.1,
see fonts/NanumGothic-OFL.txt) and register it once; when it is missing (a trimmed install) we
look for any installed Hangul font, and when there is none the charts switch to English labels
instead of drawing boxes.
"""

from __future__ import annotations

import logging
import warnings
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

FONT_DIR = Path(__file__).with_name("fonts")
BUNDLED_FONT = FONT_DIR / "NanumGothic.ttf"
# installed families known to carry Hangul, tried when the bundled file is absent
_KNOWN_HANGUL_FAMILIES = (
    "NanumGothic",
    "Noto Sans CJK KR",
    "Noto Sans KR",
    "Malgun Gothic",
    "Apple SD Gothic Neo",
    "UnDotum",
    "Baekmuk Gulim",
)


@lru_cache(maxsize=4)
def hangul_family(font_path: str | None = None) -> str | None:
    """Register the Hangul font and return its family name, or None when none is usable.

    `font_path` overrides the bundled file (tests pass a missing path to exercise the fallback).
    """
    from matplotlib import font_manager

    path = Path(font_path) if font_path is not None else BUNDLED_FONT
    if path.is_file():
        try:
            font_manager.fontManager.addfont(str(path))
            return font_manager.FontProperties(fname=str(path)).get_name()
        except Exception as exc:  # a corrupt file must not stop the report
            log.warning("could not load the Hangul font %s: %s", path, exc)
    installed = {f.name for f in font_manager.fontManager.ttflist}
    for family in _KNOWN_HANGUL_FAMILIES:
        if family in installed:
            return family
    log.info("no Hangul font found; charts use English labels")
    return None


def chart_rc(lang: str, font_path: str | None = None) -> tuple[dict[str, object], str]:
    """Matplotlib rcParams for the charts and the label language they can actually render.

    Returns (rc, effective_lang): effective_lang is "en" when Korean was asked for but no Hangul
    font exists, so callers never draw tofu.
    """
    family = hangul_family(font_path) if lang == "ko" else None
    effective = "ko" if family else "en"
    families = [family, "DejaVu Sans"] if family else ["DejaVu Sans"]
    rc: dict[str, object] = {
        "font.family": "sans-serif",
        "font.sans-serif": families,
        # NanumGothic has no U+2212 MINUS SIGN; an ASCII hyphen avoids a missing-glyph box
        "axes.unicode_minus": False,
    }
    return rc, effective


class quiet_glyph_warnings(warnings.catch_warnings):
    """Context manager that silences matplotlib's per-glyph 'missing from font' warnings."""

    def __enter__(self) -> None:  # type: ignore[override]
        super().__enter__()
        warnings.filterwarnings("ignore", message=r".*[Gg]lyph .* missing from.*")
