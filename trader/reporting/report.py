"""Build a report: metrics → charts → HTML and text, written to a folder. No mail here.

`build_report` is what the CLI and the Prefect report flow call; it only reads `ReportInputs`,
so a report can be rebuilt at any time from the database or the parquet snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from trader.reporting.charts import render_charts
from trader.reporting.inputs import ReportInputs
from trader.reporting.metrics import ReportMetrics, compute_metrics
from trader.reporting.periods import PERIODS
from trader.reporting.render import render_html, render_text, subject

CID_PREFIX = "chart-"


@dataclass
class Report:
    """A rendered report. `html` references its charts as `cid:` images (`images` maps each cid
    to its PNG); `paths` lists the files written (html, text, one per chart, eml once mailed)."""

    subject: str
    html: str
    text: str
    images: dict[str, Path]
    metrics: ReportMetrics
    paths: dict[str, Path] = field(default_factory=dict)
    lang: str = "ko"
    period: str = "day"
    day: date | None = None


def build_report(
    inputs: ReportInputs,
    *,
    period: str,
    day: date,
    lang: str,
    out_dir: Path,
    day_start_hour: int = 9,
    font_path: str | None = None,
    generated: datetime | None = None,
) -> Report:
    """Compute, draw and write the report for `period` ending with trading day `day`.

    Writes `<chart>.png`, `report.html` (charts referenced by file name, so it opens in a
    browser) and `report.txt` to `out_dir`.
    """
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}; expected one of {', '.join(PERIODS)}")
    if lang not in ("ko", "en"):
        raise ValueError(f"unknown language {lang!r}; expected ko or en")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = compute_metrics(inputs, period=period, day=day, day_start_hour=day_start_hour)
    pngs, _chart_lang = render_charts(metrics, out_dir, lang, font_path=font_path)
    images = {f"{CID_PREFIX}{name}": path for name, path in pngs.items()}
    common = {"lang": lang, "day": day, "day_start_hour": day_start_hour, "generated": generated}
    html = render_html(metrics, image_src={n: f"cid:{CID_PREFIX}{n}" for n in pngs}, **common)
    html_file = render_html(metrics, image_src={n: p.name for n, p in pngs.items()}, **common)
    text = render_text(metrics, **common)
    paths = {"html": out_dir / "report.html", "text": out_dir / "report.txt"}
    paths["html"].write_text(html_file, encoding="utf-8")
    paths["text"].write_text(text, encoding="utf-8")
    paths.update(pngs)
    return Report(
        subject=subject(metrics, lang, day),
        html=html,
        text=text,
        images=images,
        metrics=metrics,
        paths=paths,
        lang=lang,
        period=period,
        day=day,
    )
