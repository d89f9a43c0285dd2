"""Concurrent writers: a fill is never lost or doubled when threads (or two engines, like two
processes) record the same fills at once, and each fill is reported as new exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from decimal import Decimal as D

from trader.domain import Fill, Side
from trader.storage.db import Database
from trader.storage.repository import Repository

N = 60


def _fills() -> list[Fill]:
    return [
        Fill(f"tr-{i:04d}", f"o-{i // 3}", "KRW-BTC", Side.BID if i % 2 else Side.ASK, D("160594000"),
             D("0.00003736"), D("5999.79184"), D("2.99989592"), 1_000 + i)
        for i in range(N)
    ]


def _race(repos: list[Repository], fills: list[Fill]) -> Counter[str]:
    """Every repo records every fill (in a different order), all threads released together."""
    inserted: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(len(repos))
    errors: list[BaseException] = []

    def work(k: int, repo: Repository) -> None:
        try:
            barrier.wait()
            order = fills if k % 2 == 0 else list(reversed(fills))
            for f in order:
                if repo.record_fill(f):
                    with lock:
                        inserted[f.trade_uuid] += 1
        except BaseException as exc:  # surfaced below: a worker must not fail silently
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k, r)) for k, r in enumerate(repos)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return inserted


def test_two_threads_same_repo(repo: Repository) -> None:
    fills = _fills()
    inserted = _race([repo, repo], fills)
    assert inserted == Counter({f.trade_uuid: 1 for f in fills})
    assert repo.fills() and sorted(repo.fills(), key=lambda f: f.trade_uuid) == fills


def test_two_engines_like_two_processes(db_url: str) -> None:
    a, b = Database.open(db_url), Database.open(db_url)
    try:
        fills = _fills()
        inserted = _race([Repository(a), Repository(b), Repository(a)], fills)
        assert inserted == Counter({f.trade_uuid: 1 for f in fills})
        stored = Repository(b).fills()
        assert len(stored) == N and {f.trade_uuid for f in stored} == {f.trade_uuid for f in fills}
        assert set(stored) == set(fills)
    finally:
        a.close()
        b.close()


def test_concurrent_record_order_is_idempotent(repo: Repository) -> None:
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        for i in range(20):
            results.append(repo.record_order(f"at-{i}", f"i-{i}", "KRW-BTC", "bid", "price", None, None,
                                             D("6000"), "", i))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results.count(True) == 20 and len(results) == 80
    assert len(repo.orders()) == 20
