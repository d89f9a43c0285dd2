"""Words of the report in Korean and English, and the number formats (won, %, counts).

One formatter per kind of number, used by the HTML, the text and the tests alike, so a figure
in the mail is always the metric, formatted the same way.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

LANGS = ("ko", "en")

# every reason the strategy can give an order (trader/strategy: the entry, the exit rules, the
# take-profit ladder's `take_profit_<n>`), plus what reconciliation and people put on fills
_REASONS = {
    "entry": ("진입", "entry"),
    "take_profit": ("익절", "take profit"),
    "stop_loss": ("손절", "stop loss"),
    "trailing_stop": ("트레일링 스탑", "trailing stop"),
    "sharp_drop": ("급락 대응", "sharp drop"),
    "max_hold": ("보유 기간 만료", "max hold"),
    "reversal": ("추세 반전", "reversal"),
    "adopted": ("거래소 잔고 반영", "adopted"),
    "manual": ("수동", "manual"),
    "?": ("미상", "unknown"),
    "": ("미상", "unknown"),
}
_TAKE_PROFIT_STEP = re.compile(r"take_profit_(\d+)")

_TEXT = {
    "title": ("{market} 자동매매 리포트", "{market} autotrader report"),
    "title_nomarket": ("자동매매 리포트", "Autotrader report"),
    "subject": ("[자동매매] {label} 손익 {pnl} ({ret})", "[Autotrader] {label} P&L {pnl} ({ret})"),
    "label_day": ("{day} 일간", "Day {day}"),
    "label_week": ("{first}~{day} 주간", "Week {first} to {day}"),
    "label_month": ("{first}~{day} 월간", "Month {first} to {day}"),
    "label_all": ("{day}까지 누적", "Since start to {day}"),
    "day": ("일간", "Day"),
    "week": ("주간", "Week"),
    "month": ("월간", "Month"),
    "all": ("누적", "Since start"),
    "period": ("기간", "Period"),
    "no_trades": (
        "이 기간에는 체결된 거래가 없습니다. 잔고와 평가금액만 보고합니다.",
        "No trades in this period; balances and valuation only.",
    ),
    "skipped": (
        "주의: 체결 {n}건을 장부에 반영할 수 없어 제외했습니다 (이전 이력 누락): {ids}",
        "Warning: {n} fill(s) could not be applied to the ledger and were left out (missing history): {ids}",
    ),
    "summary": ("요약", "Summary"),
    "equity": ("평가금액", "Equity"),
    "start_equity": ("시작 평가금액", "Start equity"),
    "end_equity": ("종료 평가금액", "End equity"),
    "pnl": ("손익", "P&L"),
    "return": ("수익률", "Return"),
    "cum_return": ("누적 수익률", "Cumulative return"),
    "realized": ("실현 손익", "Realized P&L"),
    "unrealized": ("미실현 손익", "Unrealized P&L"),
    "fees": ("수수료", "Fees paid"),
    "mdd": ("최대 낙폭", "Max drawdown"),
    "win_rate": ("승률", "Win rate"),
    "avg_win": ("평균 이익", "Average win"),
    "avg_loss": ("평균 손실", "Average loss"),
    "profit_factor": ("손익비(PF)", "Profit factor"),
    "expectancy": ("거래당 기대 손익", "Expectancy per trade"),
    "avg_hold": ("평균 보유 시간", "Average holding time"),
    "sharpe": ("샤프 지수", "Sharpe ratio"),
    "sortino": ("소르티노 지수", "Sortino ratio"),
    "calmar": ("칼마 지수", "Calmar ratio"),
    "ratios_note": (
        "샤프·소르티노·칼마 지수: 매일 {h:02d}:00 KST 평가금액의 일별 수익률, 365일 기준 연환산",
        "Sharpe, Sortino, Calmar: daily returns of the equity at {h:02d}:00 KST, annualised over 365 days",
    ),
    "exits": ("청산 내역", "Exits"),
    "time": ("시각", "Time"),
    "fill_price": ("체결가", "Fill price"),
    "trigger_price": ("발동가", "Trigger"),
    "slippage": ("슬리피지", "slippage"),
    "exits_more": ("이전 청산 {n}건은 생략했습니다", "{n} earlier exits not shown"),
    "trades": ("거래(왕복)", "Trades (round trips)"),
    "fills": ("체결", "Fills"),
    "fills_detail": ("매수 {b} / 매도 {s}", "{b} buys / {s} sells"),
    "exposure": ("보유 시간 비중", "Time in market"),
    "best": ("최고 거래", "Best trade"),
    "worst": ("최악 거래", "Worst trade"),
    "buy_hold": ("단순 보유({market})", "Buy & hold ({market})"),
    "reasons": ("청산 사유별 손익", "P&L by exit reason"),
    "reason": ("사유", "Reason"),
    "count": ("횟수", "Count"),
    "vs_hold": ("보유 대비", "vs holding"),
    "vs_hold_note": (
        "보유 대비: 그 시점에 팔아서 기간 말까지 보유했을 때보다 더 번(+) 또는 아낀 금액",
        "vs holding: what the exit made (+) compared with holding that volume to the period end",
    ),
    "positions": ("기간 말 보유 현황", "Positions at period end"),
    "market": ("마켓", "Market"),
    "volume": ("수량", "Volume"),
    "avg_price": ("평균 매수가", "Avg buy price"),
    "price": ("현재가", "Mark price"),
    "value": ("평가액", "Value"),
    "krw": ("원화 잔고", "KRW balance"),
    "no_positions": ("보유 중인 코인이 없습니다.", "No open positions."),
    "charts": ("차트", "Charts"),
    "chart_equity": ("평가금액과 낙폭", "Equity and drawdown"),
    "chart_price": ("가격과 매매 시점", "Price with buys and sells"),
    "chart_daily": ("일별 수익률", "Daily returns"),
    "chart_weekly": ("주별 수익률", "Weekly returns"),
    "chart_reasons": ("청산 사유별 손익", "P&L by exit reason"),
    "drawdown": ("낙폭", "Drawdown"),
    "buy": ("매수", "buy"),
    "sell": ("매도", "sell"),
    "no_data": ("데이터 없음", "no data"),
    "no_sells": ("이 기간에 매도가 없습니다", "no sells in this period"),
    "generated": ("생성 {when} · 데이터: 데이터베이스/스냅샷", "Generated {when} · data: database/snapshots"),
    "day_note": (
        "하루는 오전 {h:02d}:00 KST에 시작합니다 (업비트 일봉 기준).",
        "Days start at {h:02d}:00 KST (Upbit's daily candle).",
    ),
    "none": ("-", "-"),
    "inf": ("∞", "∞"),
    "krw_unit": ("원", "KRW"),
}


def display_width(text: str) -> int:
    """Columns a string takes in a monospace font: Hangul and other wide characters count 2."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def pad(text: str, width: int) -> str:
    return text + " " * max(0, width - display_width(text))


def t(key: str, lang: str, **kw: object) -> str:
    pair = _TEXT[key]
    text = pair[0] if lang == "ko" else pair[1]
    return text.format(**kw) if kw else text


def reason_label(reason: str, lang: str) -> str:
    """An exit/entry reason in the reader's language (a ladder step: '2차 익절', 'take profit 2')."""
    pair = _REASONS.get(reason)
    if pair is None and (step := _TAKE_PROFIT_STEP.fullmatch(reason)):
        pair = (f"{int(step[1])}차 익절", f"take profit {int(step[1])}")
    if pair is None:
        return reason.replace("_", " ")
    return pair[0] if lang == "ko" else pair[1]


def duration(seconds: float | None, lang: str) -> str:
    """A holding time, two units at most: '2일 3시간' / '2 d 3 h', '3시간 12분', '45분', '12초'."""
    if seconds is None:
        return "-"
    s = round(seconds)
    d, h, m = s // 86_400, s % 86_400 // 3600, s % 3600 // 60
    ko = lang == "ko"
    if d:
        return f"{d}일 {h}시간" if ko else f"{d} d {h} h"
    if h:
        return f"{h}시간 {m}분" if ko else f"{h} h {m} min"
    if m:
        return f"{m}분" if ko else f"{m} min"
    return f"{s}초" if ko else f"{s} s"


def won(value: Decimal | float | int | None, lang: str, *, sign: bool = False) -> str:
    """Won rounded half-up to the unit: '1,234,568원' (ko) or 'KRW 1,234,568' (en)."""
    if value is None:
        return "-"
    d = value if isinstance(value, Decimal) else Decimal(str(value))
    n = int(d.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    body = f"{n:+,}" if sign and n else f"{n:,}"
    return f"{body}원" if lang == "ko" else f"KRW {body}"


def pct(value: float | None, *, sign: bool = True, digits: int = 2) -> str:
    if value is None:
        return "-"
    text = f"{value:+.{digits}f}%" if sign else f"{value:.{digits}f}%"
    # a figure that rounds to zero reads as 0.00%, not +0.00% or -0.00%
    return text.lstrip("+-") if float(text.rstrip("%")) == 0 else text


def ratio(value: float | None, lang: str) -> str:
    if value is None:
        return "-"
    if value == float("inf"):
        return t("inf", lang)
    return f"{value:.2f}"


def qty(value: Decimal | None) -> str:
    """A coin volume without trailing zeros (8 decimals at most)."""
    if value is None:
        return "-"
    q = value.quantize(Decimal("0.00000001"))
    text = format(q.normalize(), "f")
    return text


def price(value: Decimal | None) -> str:
    """A KRW price: integers with separators, small prices keep their decimals."""
    if value is None:
        return "-"
    if value == value.to_integral_value():
        return f"{int(value):,}"
    return f"{value.normalize():,f}"
