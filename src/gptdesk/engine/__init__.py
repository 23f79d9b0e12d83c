"""Engines: load a model and stream tokens (no Qt here; see design.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gptdesk.engine.base import (
    Alternative,
    Capabilities,
    Engine,
    Finished,
    LeadingBeam,
    ModelInfo,
    Notice,
    StreamEvent,
    Timings,
    TokenEvent,
    TokenPiece,
    run_to_end,
)
from gptdesk.i18n import ProgressCallback

__all__ = [
    "ENGINES",
    "Alternative",
    "Capabilities",
    "Engine",
    "Finished",
    "LeadingBeam",
    "ModelInfo",
    "Notice",
    "ProgressCallback",
    "StreamEvent",
    "Timings",
    "TokenEvent",
    "TokenPiece",
    "load_engine",
    "run_to_end",
]


#: Engines load_engine knows: "auto" is llama.cpp on a CPU when installed, else transformers.
ENGINES = ("auto", "transformers", "llamacpp", "remote")


def load_engine(name: str | Path | None = None, *, engine: str = "transformers", **options: Any) -> Engine:
    """Load a model (None: the embedded one) with the named engine."""
    if engine == "transformers":
        from gptdesk.engine.hf import TransformersEngine

        return TransformersEngine.load(name, **options)
    if engine == "llamacpp":
        from gptdesk.engine.llamacpp.engine import LlamaCppEngine

        return LlamaCppEngine.load(name, **options)
    if engine == "auto":
        from gptdesk.engine.auto import load_auto

        return load_auto(name, **options)
    if engine == "remote":
        # An OpenAI-compatible server (vLLM, llama.cpp server, Ollama, gptdesk serve): `name` is its model
        # (None: the first it serves); options are base_url (required), api_key and timeout.
        from gptdesk.engine.remote.engine import connect_remote

        return connect_remote(name, **options)
    from gptdesk.errors import InvalidInputError
    from gptdesk.i18n import Text

    raise InvalidInputError(
        Text(
            f"engine = '{engine}' is unknown: use one of {', '.join(ENGINES)}.",
            f"engine = «{engine}» неизвестен: используйте один из {', '.join(ENGINES)}.",
        )
    )
