"""The environment every Prefect process of the project runs with: offline, no telemetry, local home.

One function builds it so the demo, the e2e tests, the CI and the README agree on the settings
(see the measured facts behind each value in the README's Prefect section).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent

# Settings that keep Prefect offline and quiet whatever the profile says.
OFFLINE_ENV: dict[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_CLI_PROMPT": "false",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    # a cold ephemeral start (fresh SQLite, migrations) took 17.6 s; the default limit is 20 s
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_LEVEL": "INFO",
}


def prefect_env(
    home: Path | str,
    api_url: str | None = None,
    *,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A full environment for a child process: `base` (default os.environ) + offline settings.

    With `api_url` the process talks to that server (and the UI served there is told where its
    API is); without it, Prefect starts a temporary (ephemeral) server of its own.
    """
    env = dict(os.environ if base is None else base)
    env.update(OFFLINE_ENV)
    env["PREFECT_HOME"] = str(Path(home).resolve())
    if api_url:
        env["PREFECT_API_URL"] = api_url
        env["PREFECT_SERVER_UI_API_URL"] = api_url
        env["PREFECT_SERVER_EPHEMERAL_ENABLED"] = "false"
    else:
        env.pop("PREFECT_API_URL", None)
        env["PREFECT_SERVER_EPHEMERAL_ENABLED"] = "true"
    # the code runs from the checkout: make `flows`, `tasks`, `trader` importable anywhere
    path = env.get("PYTHONPATH", "")
    if str(PROJECT_DIR) not in path.split(os.pathsep):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_DIR), path) if p)
    return env
