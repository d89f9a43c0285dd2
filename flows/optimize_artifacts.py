"""The optimize flow's Prefect artifacts: the live leaderboard and the walk-forward window table.

Markdown artifacts keyed per run (`optimize-<study>-<run>-leaderboard` / `-windows`); every update
is a new version of the key, so the UI shows the latest and keeps the history. The leaderboard's
first line (trials done/N, best so far, trials/s) is also the progress line on stderr.
"""

from __future__ import annotations

import re
import sys
import time
from typing import Any

from flows.optimize_batches import POLL_S

LEADERBOARD_ROWS = 10


# --- artifacts ---------------------------------------------------------------------------------
def artifact_key(*parts: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    text = "-".join(p for p in parts if p)
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")[:120]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def leaderboard_markdown(study: Any, spec: Any, started: float, k: int = LEADERBOARD_ROWS) -> str:
    """The live leaderboard: progress line, then the k best trials with their parameters."""
    from trader.optimize.study import finished, leaderboard
    from trader.reporting.periods import fmt_kst
    from trader.timeutil import now_ms

    done = finished(study)
    rate = done / max(time.perf_counter() - started, 1e-9)
    board = leaderboard(study, k)
    best = _fmt(board[0]["value"]) if board else "-"
    names = sorted({p for row in board for p in row["params"]})
    head = ["#", "trial", spec.objective, "trades", "return %", "MDD %", *names]
    lines = [
        f"**{spec.study_name}** · {done}/{spec.trials} trials · best {spec.objective} {best} · "
        f"{rate:.2f} trials/s · {fmt_kst(now_ms(), with_seconds=True)}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in board:
        number = f"{row['number']} (as given)" if row.get("as_given") else row["number"]
        cells = [row["rank"], number, row["value"], row["trades"], row.get("return_pct"),
                 row.get("max_drawdown_pct"), *(row["params"].get(n) for n in names)]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    if not board:
        lines.append("| " + " | ".join(["-"] * len(head)) + " |")
    return "\n".join(lines)


def windows_markdown(rows: list[dict[str, Any]], objective: str) -> str:
    """The walk-forward table: train and test spans (KST), chosen parameters, in/out of sample."""
    head = ["window", "train (KST)", "test (KST)", f"IS {objective}", "IS return %", "OOS return %",
            "OOS trades", "best params"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, w in enumerate(rows, 1):
        ins, oos = w.get("in_sample") or {}, w.get("out_of_sample") or {}
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted((w.get("best_params") or {}).items()))
        cells = [i, _span(w.get("train")), _span(w.get("test")), ins.get("value"), ins.get("return_pct"),
                 oos.get("return_pct"), oos.get("trades"), params]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    return "\n".join(lines)


def _span(span: Any) -> str:
    if not span:
        return "-"
    return f"{span.get('start', '?')} → {span.get('end', '?')}"


class Publisher:
    """Markdown artifacts keyed per run; each update is a new version of the same key."""

    def __init__(self, spec: Any, run_id: str) -> None:
        self.spec = spec
        self.started = time.perf_counter()
        self.board_key = artifact_key("optimize", spec.study_name, run_id[:8], "leaderboard")
        self.windows_key = artifact_key("optimize", spec.study_name, run_id[:8], "windows")
        self._last_board = ""
        self._last_line = 0.0

    def leaderboard(self, study: Any, final: bool = False, spec: Any | None = None) -> None:
        from prefect.artifacts import create_markdown_artifact

        text = leaderboard_markdown(study, spec or self.spec, self.started)
        self._progress_line(text, final)
        body = text.split("\n", 1)[1]
        if final or body != self._last_board:  # a new version when the table changed, and at the end
            self._last_board = body
            create_markdown_artifact(markdown=text, key=self.board_key,
                                     description="Optuna leaderboard (updates while the study runs)")

    def windows(self, rows: list[dict[str, Any]]) -> None:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(markdown=windows_markdown(rows, self.spec.objective), key=self.windows_key,
                                 description="Walk-forward windows: in-sample vs out-of-sample")

    def _progress_line(self, text: str, final: bool) -> None:
        now = time.perf_counter()
        if final or now - self._last_line >= POLL_S:
            self._last_line = now
            print(text.split("\n", 1)[0].replace("**", ""), file=sys.stderr, flush=True)
