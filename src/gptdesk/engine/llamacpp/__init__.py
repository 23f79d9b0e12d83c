"""The llama.cpp engine: native library, cache backend and engine."""
