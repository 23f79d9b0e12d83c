"""History: every generation in SQLite with what it takes to reproduce it (no Qt here)."""

from gptdesk.history.errors import HistoryBugError, HistoryError, HistoryUnavailableError
from gptdesk.history.export import FORMATS, export
from gptdesk.history.recorder import Backlog, LiveRecorder
from gptdesk.history.store import (
    GenerationRecord,
    HistoryStore,
    PendingGeneration,
    data_dir,
    default_path,
    library_versions,
    open_history,
)

__all__ = [
    "FORMATS",
    "Backlog",
    "GenerationRecord",
    "HistoryBugError",
    "HistoryError",
    "HistoryStore",
    "HistoryUnavailableError",
    "LiveRecorder",
    "PendingGeneration",
    "data_dir",
    "default_path",
    "export",
    "library_versions",
    "open_history",
]
