"""Moving one file's bytes: locks, resume from the partial file, retries with pauses, checksum on arrival."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from gptdesk.errors import DownloadCancelled, ModelCorruptError, ModelError, NetworkError
from gptdesk.i18n import Text
from gptdesk.models.cost import format_bytes
from gptdesk.models.hub.disk import disk_full, is_disk_full
from gptdesk.models.hub.errors import is_transient, short
from gptdesk.models.hub.integrity import Digest, hash_into
from gptdesk.models.hub.plan import DownloadPlan, HubFile
from gptdesk.models.hub.progress import Meter
from gptdesk.models.hub.settings import HubSettings, RetryPolicy


class _Restart(Exception):
    """The partial file cannot be continued (the server's range did not fit it): start the file over."""


@dataclass
class _Transfer:
    """One file's download state, kept across retries."""

    failures: int = 0  # tries in a row that brought no byte
    restarts: int = 0
    bad_checksums: int = 0
    resumed: int = 0  # bytes an earlier run had left in the partial file


def raise_if_cancelled(cancel: threading.Event, the_plan: DownloadPlan) -> None:
    if not cancel.is_set():
        return
    kept = the_plan.present_bytes()
    raise DownloadCancelled(
        Text(
            f"Download of {the_plan.repo_id} cancelled. The {format_bytes(kept)} already downloaded are kept: "
            f"download it again to resume, or delete them (`gptdesk models rm {the_plan.name}`).",
            f"Загрузка {the_plan.repo_id} отменена. Уже скачанные {format_bytes(kept, 'ru')} сохранены: "
            f"запустите загрузку снова, чтобы продолжить, или удалите их (`gptdesk models rm {the_plan.name}`).",
        )
    )


@contextmanager
def file_lock(the_plan: DownloadPlan, f: HubFile, cancel: threading.Event, meter: Meter) -> Iterator[None]:
    """Hold the blob's lock; while another program holds it, say so and keep checking for cancel."""
    from filelock import Timeout
    from huggingface_hub.utils import WeakFileLock  # type: ignore[attr-defined]

    path = the_plan.lock_path(f)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            lock = WeakFileLock(path, timeout=0.5)
            lock.__enter__()
        except Timeout:
            meter.emit(
                force=True,
                note=Text(
                    "another program is downloading this file; waiting for it",
                    "этот файл скачивает другая программа; ожидание",
                ),
            )
            raise_if_cancelled(cancel, the_plan)
            continue
        try:
            yield
        finally:
            lock.__exit__(None, None, None)
        return


def download_file(
    the_plan: DownloadPlan,
    f: HubFile,
    hub: HubSettings,
    meter: Meter,
    cancel: threading.Event,
    retry: RetryPolicy,
) -> None:
    """Fetch one file into <etag>.incomplete (resuming what is there), check it, move it into blobs/."""
    part = the_plan.partial_path(f)
    state = _Transfer()
    url = f.url
    while True:
        raise_if_cancelled(cancel, the_plan)
        try:
            got = _transfer(the_plan, f, url, part, hub, meter, cancel, retry, state)
        except (DownloadCancelled, _Restart) as exc:
            if isinstance(exc, DownloadCancelled):
                raise
            state.restarts += 1
            if state.restarts > 3:
                raise ModelError(
                    Text(
                        f"The server at {the_plan.endpoint} keeps answering range requests for {f.name} wrongly. "
                        "Delete the partial download (`gptdesk models rm`) and retry, or use another HF_ENDPOINT.",
                        f"Сервер {the_plan.endpoint} неверно отвечает на запросы части файла {f.name}. Удалите "
                        "недокачанное (`gptdesk models rm`) и повторите или укажите другой HF_ENDPOINT.",
                    )
                ) from exc
            continue
        except Exception as exc:
            if isinstance(exc, OSError) and is_disk_full(exc):
                raise disk_full(the_plan, f, exc) from exc
            if not is_transient(exc):
                raise
            url = _retry_or_give_up(the_plan, f, hub, exc, meter, cancel, retry, state) or url
            continue
        check = f.digest
        if check is None or got == check[1]:
            os.replace(part, the_plan.blob_path(f))
            return
        part.unlink(missing_ok=True)
        state.bad_checksums += 1
        if state.bad_checksums >= 2:
            raise ModelCorruptError(
                Text(
                    f"{f.name} of {the_plan.repo_id} arrived damaged twice: its {check[0]} is {got}, the hub "
                    f"says {check[1]}. Nothing was kept. The hub or the mirror ({the_plan.endpoint}) may be "
                    "serving a broken copy: retry later or set another HF_ENDPOINT.",
                    f"{f.name} из {the_plan.repo_id} дважды пришёл повреждённым: его {check[0]} — {got}, а хаб "
                    f"указывает {check[1]}. Ничего не сохранено. Хаб или зеркало ({the_plan.endpoint}) может "
                    "отдавать испорченную копию: повторите позже или укажите другой HF_ENDPOINT.",
                )
            )
        meter.at(
            0,
            force=True,
            phase="retry",
            note=Text(
                "the file arrived damaged (checksum mismatch); downloading it again",
                "файл пришёл повреждённым (контрольная сумма не совпала); скачиваю заново",
            ),
        )


def _retry_or_give_up(
    the_plan: DownloadPlan,
    f: HubFile,
    hub: HubSettings,
    exc: BaseException,
    meter: Meter,
    cancel: threading.Event,
    retry: RetryPolicy,
    state: _Transfer,
) -> str | None:
    """Wait before the next try (cancel cuts the wait short); after too many, raise NetworkError.

    Returns a fresh download URL when the hub gives one (a CDN's signed address can expire).
    """
    state.failures += 1
    meter.pause()
    if state.failures >= retry.attempts:
        kept = the_plan.present_bytes()
        raise NetworkError(
            Text(
                f"The connection to {the_plan.endpoint} keeps failing while downloading {f.name} of "
                f"{the_plan.repo_id} ({short(exc)}; {state.failures} tries). {format_bytes(kept)} of "
                f"{format_bytes(the_plan.total_bytes)} are downloaded and kept: run the download again to resume "
                "from there, or set HF_ENDPOINT to a mirror.",
                f"Соединение с {the_plan.endpoint} всё время обрывается при загрузке {f.name} из "
                f"{the_plan.repo_id} ({short(exc)}; попыток: {state.failures}). Скачано и сохранено "
                f"{format_bytes(kept, 'ru')} из {format_bytes(the_plan.total_bytes, 'ru')}: запустите загрузку "
                "снова, чтобы продолжить, или задайте зеркало в HF_ENDPOINT.",
            )
        ) from exc
    delay = retry.delay(state.failures)
    meter.emit(
        force=True,
        phase="retry",
        note=Text(
            f"connection lost ({short(exc)}); retrying in {delay:.0f} s (try {state.failures + 1} of {retry.attempts})",
            f"соединение прервалось ({short(exc)}); повтор через {delay:.0f} с "
            f"(попытка {state.failures + 1} из {retry.attempts})",
        ),
    )
    if cancel.wait(delay):
        raise_if_cancelled(cancel, the_plan)
    try:
        return _fresh_url(the_plan, f, hub, retry)
    except Exception:  # still down: the next GET says so, and counts as the next failure
        return None


def _fresh_url(the_plan: DownloadPlan, f: HubFile, hub: HubSettings, retry: RetryPolicy) -> str:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    token = hub.resolved_token()
    meta = get_hf_file_metadata(
        hf_hub_url(the_plan.repo_id, f.name, revision=the_plan.commit, endpoint=the_plan.endpoint),
        token=token or False,
        endpoint=the_plan.endpoint,
        timeout=retry.timeout(),
    )
    return meta.location


def _transfer(
    the_plan: DownloadPlan,
    f: HubFile,
    url: str,
    part: Path,
    hub: HubSettings,
    meter: Meter,
    cancel: threading.Event,
    retry: RetryPolicy,
    state: _Transfer,
) -> str | None:
    """One GET of the file's missing bytes, appended to the partial file.

    Returns the whole file's hex digest (None when the hub published no checksum); raises on a
    dropped connection (the bytes so far stay on disk) and _Restart when the partial file is unusable.
    """
    import httpx2
    from huggingface_hub import get_session, hf_raise_for_status
    from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

    offset = part.stat().st_size if part.is_file() else 0
    if offset > f.size:
        part.unlink()
        offset = 0
    check = f.digest
    digest = Digest(check[0], f.size) if check is not None else None
    if offset and digest is not None:
        # The bytes already on disk go into the checksum first (the bar stays where they put it).
        meter.at(offset, force=True, phase="verify", note=None)
        hash_into(part, digest, offset)
    if offset and state.resumed == 0:
        state.resumed = offset
    meter.at(offset, force=True, phase="download", resumed_bytes=state.resumed, note=None)
    if offset == f.size:
        return digest.hexdigest() if digest is not None else None

    token = hub.resolved_token()
    headers = build_hf_headers(token=token or False)
    headers["Accept-Encoding"] = "identity"  # exact bytes, so sizes, ranges and checksums agree
    if not _same_origin(url, the_plan.endpoint):
        headers.pop("authorization", None)  # a signed CDN address: the token must not leave the hub
    if offset:
        headers["Range"] = f"bytes={offset}-"
    timeout = retry.timeout()
    written = offset
    with get_session().stream("GET", url, headers=headers, timeout=timeout, follow_redirects=True) as response:
        if offset and response.status_code == 416:
            part.unlink()  # nothing past `offset`: the partial file is not a prefix of this file
            raise _Restart(f.name)
        hf_raise_for_status(response)
        mode = "ab"
        if offset and response.status_code != 206:
            # The server ignored Range and sends the whole file: start over rather than append.
            mode, written = "wb", 0
            digest = Digest(check[0], f.size) if check is not None else None
        elif offset and _content_range_start(response.headers.get("Content-Range")) != offset:
            part.unlink()
            raise _Restart(f.name)
        with part.open(mode) as out:
            for chunk in response.iter_bytes():
                if cancel.is_set():
                    break
                if not chunk:
                    continue
                chunk = chunk[: f.size - written]
                out.write(chunk)
                if digest is not None:
                    digest.update(chunk)
                written += len(chunk)
                meter.received(len(chunk))
                state.failures = 0  # bytes arrived: the connection works again
                meter.at(written, phase="download", note=None)
                if written >= f.size:
                    break
    raise_if_cancelled(cancel, the_plan)
    if written < f.size:
        # The body ended early without a transport error (e.g. a proxy cut it): resume from here.
        raise httpx2.RemoteProtocolError(f"the server sent {written} of {f.size} bytes")
    return digest.hexdigest() if digest is not None else None


def _content_range_start(value: str | None) -> int | None:
    match = re.match(r"bytes (\d+)-", value or "")
    return int(match.group(1)) if match else None


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlparse(a), urlparse(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)
