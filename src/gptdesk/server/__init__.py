"""The OpenAI-compatible HTTP server over the engine core (no Qt here; see design.md)."""

from __future__ import annotations

from gptdesk.server.config import ServerConfig

__all__ = ["ServerConfig"]

# create_app (server.app), BackgroundServer (server.runner) and GenerationQueue (server.queue) import
# FastAPI and uvicorn; they are imported from their modules, so `import gptdesk.server` stays light.
