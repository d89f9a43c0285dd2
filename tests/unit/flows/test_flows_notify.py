"""notify-failure's wait for the run's own hook: one crash must make one mail, not two."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from flows import notify
from flows.hooks import ALERTED_TAG


class FakeClient:
    """Returns the run untagged first, then as the hook left it (tagged) on later reads."""

    def __init__(self, crashed_ago_s: float) -> None:
        self.reads = 0
        self.state = SimpleNamespace(timestamp=datetime.now(UTC) - timedelta(seconds=crashed_ago_s))

    async def read_flow_run(self, flow_run_id: str) -> Any:
        self.reads += 1
        tags = ["trading"] if self.reads == 1 else ["trading", ALERTED_TAG]
        return SimpleNamespace(id=flow_run_id, tags=tags, state=self.state)


def test_a_fresh_crash_is_read_again_after_the_hook_grace() -> None:
    client = FakeClient(crashed_ago_s=0.0)
    run = asyncio.run(notify._read_after_hook_grace(client, "r", grace_s=0.2))
    assert client.reads == 2 and ALERTED_TAG in run.tags


def test_an_old_crash_is_not_waited_for() -> None:
    client = FakeClient(crashed_ago_s=60.0)
    run = asyncio.run(notify._read_after_hook_grace(client, "r", grace_s=10.0))
    assert client.reads == 1 and ALERTED_TAG not in run.tags
