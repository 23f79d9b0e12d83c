"""Where models come from and go to (endpoint, token, cache folder), and how a flaky connection is retried."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from gptdesk.errors import InvalidInputError
from gptdesk.i18n import Text
from gptdesk.models.locate import hub_cache_dir, hub_endpoint

DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class HubSettings:
    """Where models come from and go to; None in a field means the environment's value, read now."""

    endpoint: str | None = None  # a mirror such as https://hf-mirror.com; None: HF_ENDPOINT, else huggingface.co
    token: str | None = None  # an access token for gated or private models; None: HF_TOKEN or `hf auth login`
    cache_dir: Path | None = None  # None: the standard cache (HF_HUB_CACHE, HF_HOME or ~/.cache/huggingface/hub)

    def resolved_endpoint(self) -> str:
        value = (self.endpoint or hub_endpoint() or DEFAULT_ENDPOINT).strip().rstrip("/")
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidInputError(
                Text(
                    f"Hub endpoint '{value}' is not a web address. Use a URL such as {DEFAULT_ENDPOINT} or a "
                    "mirror such as https://hf-mirror.com (setting HF_ENDPOINT or the hub settings).",
                    f"Адрес хаба «{value}» не похож на веб-адрес. Укажите URL, например {DEFAULT_ENDPOINT}, "
                    "или зеркало, например https://hf-mirror.com (переменная HF_ENDPOINT или настройки хаба).",
                )
            )
        return value

    def resolved_cache(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else hub_cache_dir()

    def resolved_token(self) -> str | None:
        """The token to send: this setting's, else HF_TOKEN now, else the one `hf auth login` saved."""
        if self.token and self.token.strip():
            return self.token.strip()
        if os.environ.get("HF_TOKEN", "").strip():
            return os.environ["HF_TOKEN"].strip()
        from huggingface_hub import get_token

        try:
            return get_token()
        except Exception:  # a broken token file or a failed OIDC exchange must not stop public downloads
            return None


@dataclass(frozen=True)
class RetryPolicy:
    """How a flaky connection is handled: timeouts, and retries with growing pauses."""

    attempts: int = 6  # tries in a row without receiving a byte before giving up
    first_delay_s: float = 1.0  # pause before the first retry; doubles each time
    max_delay_s: float = 30.0
    # Every request (the model's metadata included) has both: a mirror that accepts the connection
    # and never answers must not hang the app. HF_HUB_DOWNLOAD_TIMEOUT, when set, gives both.
    connect_timeout_s: float = field(default_factory=lambda: _timeout_from_env(15.0))
    read_timeout_s: float = field(default_factory=lambda: _timeout_from_env(30.0))  # no byte this long: dropped

    def delay(self, failures: int) -> float:
        return float(min(self.max_delay_s, self.first_delay_s * 2 ** max(0, failures - 1)))

    def timeout(self) -> Any:
        """The httpx Timeout for one request."""
        import httpx2

        return httpx2.Timeout(self.read_timeout_s, connect=self.connect_timeout_s)


def _timeout_from_env(default: float) -> float:
    value = os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return default
    return seconds if seconds > 0 else default
