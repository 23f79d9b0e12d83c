"""History: every generation in SQLite with what it takes to reproduce it (no Qt here)."""

from gptdesk.history.errors import HistoryBugError, HistoryError, HistoryUnavailableError
from gptdesk.history.export import FORMATS, export
from gptdesk.history.recorder import LiveRecorder
from gptdesk.history.store import GenerationRecord, HistoryStore, data_dir, default_path, library_versions

__all__ = [
    "FORMATS",
    "GenerationRecord",
    "HistoryBugError",
    "HistoryError",
    "HistoryStore",
    "HistoryUnavailableError",
    "LiveRecorder",
    "data_dir",
    "default_path",
    "export",
    "library_versions",
]
