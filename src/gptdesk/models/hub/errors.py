"""The hub's failures as the user reads them: no network, offline mode, and which failures are worth a retry."""

from __future__ import annotations

from gptdesk.errors import NetworkError
from gptdesk.i18n import Text


def offline_error(name: str, cause: object | None = None) -> NetworkError:
    """The network is down: say so, and offer what is already on this computer."""
    from gptdesk.models.manage import local_model_names

    here = ", ".join(local_model_names()) or "embedded"
    detail = f" ({cause})" if cause else ""
    return NetworkError(
        Text(
            f"Cannot reach the model hub to download '{name}'{detail} (no network?). Connect and retry, set "
            f"a mirror in HF_ENDPOINT, or use a model that is already on this computer ({here}) or open a "
            "model folder.",
            f"Не удаётся связаться с хабом моделей, чтобы скачать «{name}»{detail} (нет сети?). Подключитесь "
            f"и повторите, задайте зеркало в HF_ENDPOINT или возьмите модель, которая уже есть на этом "
            f"компьютере ({here}), или откройте папку модели.",
        )
    )


def offline_mode_error(name: str) -> NetworkError:
    return NetworkError(
        Text(
            f"Cannot reach the model hub to download '{name}': HF_HUB_OFFLINE is set, so nothing may be "
            "downloaded. Unset HF_HUB_OFFLINE and retry, or open a model folder that is on this computer.",
            f"Не удаётся связаться с хабом моделей, чтобы скачать «{name}»: задан HF_HUB_OFFLINE, и скачивать "
            "ничего нельзя. Уберите HF_HUB_OFFLINE и повторите или откройте папку модели на этом компьютере.",
        )
    )


def is_transient(exc: BaseException) -> bool:
    """A dropped or refused connection, a timeout, or a server-side hiccup (5xx, 408, 429)."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return False
    if isinstance(exc, httpx2.TransportError | TimeoutError | ConnectionError):
        return True
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return exc.response.status_code in (408, 429) or exc.response.status_code >= 500
    return False


def short(exc: object) -> str:
    text = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "…"
