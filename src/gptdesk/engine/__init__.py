"""Engines: load a model and stream tokens (no Qt here; see design.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gptdesk.engine.base import (
    Alternative,
    Engine,
    Finished,
    ModelInfo,
    Notice,
    ProgressCallback,
    StreamEvent,
    Timings,
    TokenEvent,
    TokenPiece,
    run_to_end,
)

__all__ = [
    "Alternative",
    "Engine",
    "Finished",
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


def load_engine(name: str | Path | None = None, *, engine: str = "transformers", **options: Any) -> Engine:
    """Load a model (None: the embedded one) with the named engine."""
    if engine == "transformers":
        from gptdesk.engine.hf import TransformersEngine

        return TransformersEngine.load(name, **options)
    from gptdesk.errors import InvalidInputError
    from gptdesk.i18n import Text

    raise InvalidInputError(
        Text(
            f"engine = '{engine}' is unknown: use 'transformers'.",
            f"engine = «{engine}» неизвестен: используйте «transformers».",
        )
    )
