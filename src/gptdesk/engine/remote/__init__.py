"""The remote engine: an OpenAI-compatible server as an engine."""
