"""Find a model on this computer or, when allowed, download it from the hub first."""

from __future__ import annotations

import os
from typing import Any

from gptdesk.errors import ModelNotDownloadedError
from gptdesk.models.catalog import find_entry
from gptdesk.models.hub.download import pull
from gptdesk.models.locate import ResolvedModel, check_folder, resolve


def obtain(name: str | os.PathLike[str] | None, *, allow_download: bool = True, **pull_options: Any) -> ResolvedModel:
    """resolve(name), pulling a hub model into the standard cache first when it is not here and `allow_download`.

    `pull_options` go to pull(): progress, cancel, hub settings, free_space, retry.
    """
    try:
        return resolve(name)
    except ModelNotDownloadedError:
        if not allow_download:
            raise
    text = str(name).strip()
    snap = pull(text, **pull_options)
    check_folder(snap)
    entry = find_entry(text)
    return ResolvedModel(entry.id if entry else text, snap, snap.name, entry)
