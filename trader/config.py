"""Runtime settings from the environment (and an optional `.env`), validated by pydantic.

The strategy itself is declared in a YAML file (see `trader.strategy.config`); this module holds
where things live and how to reach them: the database, the exchange, the mail server. Secrets are
`SecretStr` so they never print; `describe()` gives a loggable, redacted view.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

UPBIT_REST_URL = "https://api.upbit.com"
UPBIT_WS_URL = "wss://api.upbit.com/websocket/v1"

# Fixed development keys of the simulator (shown in `python -m trader sim --help`); they only
# open the local simulator and are useless anywhere else.
SIM_ACCESS_KEY = "sim-access-key-0000000000000000000000"
SIM_SECRET_KEY = "sim-secret-key-0000000000000000000000000000"


class Settings(BaseSettings):
    """Environment variables: `TRADER_*`, plus Upbit's own `UPBIT_ACCESS_KEY`/`UPBIT_SECRET_KEY`."""

    model_config = SettingsConfigDict(env_prefix="TRADER_", env_file=".env", extra="ignore")

    var_dir: Path = Path("var")
    database_url: str | None = None  # default: sqlite:///<var_dir>/trader.db

    upbit_access_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("UPBIT_ACCESS_KEY", "TRADER_UPBIT_ACCESS_KEY")
    )
    upbit_secret_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("UPBIT_SECRET_KEY", "TRADER_UPBIT_SECRET_KEY")
    )
    upbit_base_url: str = UPBIT_REST_URL
    upbit_ws_url: str = UPBIT_WS_URL
    # order creations written straight to a kept-alive connection instead of through the SDK's
    # request machinery (trader/upbit/direct.py): ≈1.5–2.5 ms less from tick to order on the wire
    direct_orders: bool = False

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_mode: Literal["insecure", "ssl", "starttls"] = "insecure"
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: float = 30.0
    mail_from: str = "autotrader@localhost"
    mail_to: list[str] = ["me@localhost"]

    report_lang: Literal["ko", "en"] = "ko"
    day_start_hour_kst: int = Field(default=9, ge=0, le=23)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.var_dir / 'trader.db').as_posix()}"

    @property
    def reports_dir(self) -> Path:
        return self.var_dir / "reports"

    def describe(self) -> dict[str, object]:
        """Settings safe to log: secrets shown only as set/unset, DB passwords masked."""
        url = self.db_url
        if "@" in url and "://" in url:
            scheme, rest = url.split("://", 1)
            creds, host = rest.rsplit("@", 1)
            user = creds.split(":", 1)[0]
            url = f"{scheme}://{user}:***@{host}"
        return {
            "database_url": url,
            "upbit_base_url": self.upbit_base_url,
            "upbit_keys": "set" if self.upbit_access_key and self.upbit_secret_key else "unset",
            "smtp": f"{self.smtp_mode}://{self.smtp_host}:{self.smtp_port}",
            "mail_to": self.mail_to,
        }


def load_settings(**overrides: object) -> Settings:
    """Settings from env/.env with explicit overrides (CLI flags) on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
