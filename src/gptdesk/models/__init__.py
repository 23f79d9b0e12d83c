"""Known models, where they live on disk, and the embedded model."""

from gptdesk.models.catalog import CATALOG, EMBEDDED_ID, CatalogEntry, find_entry
from gptdesk.models.locate import EMBEDDED_PATH, ResolvedModel, find_local, resolve

__all__ = [
    "CATALOG",
    "EMBEDDED_ID",
    "EMBEDDED_PATH",
    "CatalogEntry",
    "ResolvedModel",
    "find_entry",
    "find_local",
    "resolve",
]
