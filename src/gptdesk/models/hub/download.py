"""Hub downloads into the standard Hugging Face cache: progress, resume, cancel, disk and integrity checks."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from gptdesk.errors import (
    DiskSpaceError,
    DownloadCancelled,
    InvalidInputError,
    ModelCorruptError,
    ModelError,
    ModelNotFoundError,
    NetworkError,
)
from gptdesk.i18n import Text
from gptdesk.models.catalog import EMBEDDED_ID, find_entry
from gptdesk.models.cost import format_bytes
from gptdesk.models.locate import NEEDED_FILES, hub_cache_dir, hub_candidates, hub_endpoint, hub_offline

DEFAULT_ENDPOINT = "https://huggingface.co"
#: Left free on the cache's disk after a download, so a model never fills the disk to the last byte.
RESERVE_BYTES = 100_000_000
#: Progress callbacks are called at most this often (besides the start and end of each file).
PROGRESS_INTERVAL_S = 0.1
#: Speed is averaged over this many seconds, so one slow or fast second does not swing the ETA.
SPEED_WINDOW_S = 5.0
MIN_SPEED_SPAN_S = 1.0
#: Weight files, best first: safetensors (safe to load and mmapped), then the old pickle format.
_SAFETENSORS = re.compile(r"^model(-\d{5}-of-\d{5})?\.safetensors$")
_PICKLE = re.compile(r"^pytorch_model(-\d{5}-of-\d{5})?\.bin$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")

Phase = Literal["check", "download", "verify", "retry", "done"]
FreeSpace = Callable[[Path], int]


# -- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubSettings:
    """Where models come from and go to; None in a field means the environment's value, read now."""

    endpoint: str | None = None  # a mirror such as https://hf-mirror.com; None: HF_ENDPOINT, else huggingface.co
    token: str | None = None  # an access token for gated or private models; None: HF_TOKEN or `hf auth login`
    cache_dir: Path | None = None  # None: the standard cache (HF_HUB_CACHE, HF_HOME or ~/.cache/huggingface/hub)

    def resolved_endpoint(self) -> str:
        value = (self.endpoint or hub_endpoint() or DEFAULT_ENDPOINT).strip().rstrip("/")
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidInputError(
                Text(
                    f"Hub endpoint '{value}' is not a web address. Use a URL such as {DEFAULT_ENDPOINT} or a "
                    "mirror such as https://hf-mirror.com (setting HF_ENDPOINT or the hub settings).",
                    f"Адрес хаба «{value}» не похож на веб-адрес. Укажите URL, например {DEFAULT_ENDPOINT}, "
                    "или зеркало, например https://hf-mirror.com (переменная HF_ENDPOINT или настройки хаба).",
                )
            )
        return value

    def resolved_cache(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else hub_cache_dir()

    def resolved_token(self) -> str | None:
        """The token to send: this setting's, else HF_TOKEN now, else the one `hf auth login` saved."""
        if self.token and self.token.strip():
            return self.token.strip()
        if os.environ.get("HF_TOKEN", "").strip():
            return os.environ["HF_TOKEN"].strip()
        from huggingface_hub import get_token

        try:
            return get_token()
        except Exception:  # a broken token file or a failed OIDC exchange must not stop public downloads
            return None


@dataclass(frozen=True)
class RetryPolicy:
    """How a flaky connection is handled: timeouts, and retries with growing pauses."""

    attempts: int = 6  # tries in a row without receiving a byte before giving up
    first_delay_s: float = 1.0  # pause before the first retry; doubles each time
    max_delay_s: float = 30.0
    # Every request (the model's metadata included) has both: a mirror that accepts the connection
    # and never answers must not hang the app. HF_HUB_DOWNLOAD_TIMEOUT, when set, gives both.
    connect_timeout_s: float = field(default_factory=lambda: _timeout_from_env(15.0))
    read_timeout_s: float = field(default_factory=lambda: _timeout_from_env(30.0))  # no byte this long: dropped

    def delay(self, failures: int) -> float:
        return float(min(self.max_delay_s, self.first_delay_s * 2 ** max(0, failures - 1)))

    def timeout(self) -> Any:
        """The httpx Timeout for one request."""
        import httpx2

        return httpx2.Timeout(self.read_timeout_s, connect=self.connect_timeout_s)


def _timeout_from_env(default: float) -> float:
    value = os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return default
    return seconds if seconds > 0 else default


# -- what to fetch ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubFile:
    """One file of a model on the hub, as its metadata describes it."""

    name: str
    size: int
    etag: str  # its blob's name in the cache: the sha256 for LFS files, the git object id otherwise
    sha256: str | None = None  # LFS files: the digest the hub published
    git_oid: str | None = None  # small files: the git object id (sha1 of "blob <size>\0" + content)
    url: str = ""  # where to GET it (the hub, or a CDN the hub redirects to)

    @property
    def digest(self) -> tuple[str, str] | None:
        """The check the finished file must pass: ("sha256" | "git-sha1", expected hex), None if unknown."""
        if self.sha256:
            return ("sha256", self.sha256)
        if self.git_oid:
            return ("git-sha1", self.git_oid)
        if _HEX64.match(self.etag):
            return ("sha256", self.etag)
        if _HEX40.match(self.etag):
            return ("git-sha1", self.etag)
        return None


@dataclass(frozen=True)
class DownloadPlan:
    """A model's files at one commit, and where they go in the cache."""

    name: str  # as the user typed it
    repo_id: str  # the hub id that answered (ai-forever/… or sberbank-ai/…)
    commit: str
    revision: str  # the ref the user asked for ("main"), recorded in refs/ when all is done
    files: tuple[HubFile, ...]
    cache_dir: Path
    endpoint: str

    @property
    def repo_dir(self) -> Path:
        return self.cache_dir / ("models--" + self.repo_id.replace("/", "--"))

    @property
    def snapshot_dir(self) -> Path:
        return self.repo_dir / "snapshots" / self.commit

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def blob_path(self, f: HubFile) -> Path:
        return self.repo_dir / "blobs" / f.etag

    def partial_path(self, f: HubFile) -> Path:
        # Not huggingface_hub's per-process "<etag>.<uuid>.incomplete": one stable name, so a later
        # run (after a crash or a kill) finds it and resumes.
        return self.repo_dir / "blobs" / (f.etag + ".incomplete")

    def lock_path(self, f: HubFile) -> Path:
        # The lock huggingface_hub takes for the same blob, so GPT Desk and other tools take turns.
        return self.cache_dir / ".locks" / self.repo_dir.name / (f.etag + ".lock")

    def present_bytes(self) -> int:
        """Bytes already on disk for this plan: whole blobs and partial files."""
        done = 0
        for f in self.files:
            if self.blob_path(f).is_file():
                done += f.size
            elif self.partial_path(f).is_file():
                done += min(f.size, self.partial_path(f).stat().st_size)
        return done

    def missing_bytes(self) -> int:
        return self.total_bytes - self.present_bytes()


def select_files(names: set[str] | list[str]) -> list[str]:
    """The files a GPT-2 model needs from a repo listing: config, tokenizer and one set of weights.

    safetensors are taken when the repo has them (one file or shards with their index), else
    pytorch_model.bin; TensorFlow, Flax, ONNX, Rust and GGUF copies and everything in sub-folders
    are left out.
    """
    top = {n for n in names if "/" not in n}
    weights = sorted(n for n in top if _SAFETENSORS.match(n))
    if weights:
        if "model.safetensors.index.json" in top:
            weights.append("model.safetensors.index.json")
    else:
        weights = sorted(n for n in top if _PICKLE.match(n))
        if weights and "pytorch_model.bin.index.json" in top:
            weights.append("pytorch_model.bin.index.json")
    return [n for n in NEEDED_FILES if n in top] + weights


# -- progress --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadProgress:
    """Where a download stands: the file, bytes, speed and time left."""

    repo_id: str
    phase: Phase
    filename: str
    file_index: int  # 1-based
    file_count: int
    done_bytes: int  # over all the model's files, those already on disk included
    total_bytes: int
    file_done: int
    file_total: int
    speed: float | None = None  # bytes per second over the last few seconds
    eta: float | None = None  # seconds left at that speed
    resumed_bytes: int = 0  # bytes of this file that an earlier, interrupted run had fetched
    note: Text | None = None  # why it is waiting (a retry), shown beside the bar

    @property
    def fraction(self) -> float:
        return self.done_bytes / self.total_bytes if self.total_bytes else 1.0

    def text(self) -> Text:
        values = {
            "file": self.filename,
            "i": self.file_index,
            "n": self.file_count,
            "done": _Size(self.done_bytes),
            "total": _Size(self.total_bytes),
            "pct": int(self.fraction * 100),
        }
        if self.phase == "verify":
            head = Text(
                "Checking {file} ({i}/{n}) against the hub's checksum",
                "Проверка {file} ({i}/{n}) по контрольной сумме с хаба",
            ).format(**values)
        elif self.phase == "done":
            head = Text("Downloaded {total}", "Скачано {total:ru}").format(**values)
        elif self.phase == "check":
            head = Text("Preparing {file} ({i}/{n})", "Подготовка {file} ({i}/{n})").format(**values)
        else:
            head = Text(
                "{file} ({i}/{n}): {done} of {total} ({pct}%)",
                "{file} ({i}/{n}): {done:ru} из {total:ru} ({pct}%)",
            ).format(**values)
            if self.speed:
                head = head + Text(", {s}/s", ", {s:ru}/с").format(s=_Size(self.speed))
            if self.eta is not None and self.speed:
                head = head + Text(", {t} left", ", осталось {t:ru}").format(t=_Duration(self.eta))
        if self.note is not None:
            head = head + Text(" — ", " — ") + self.note
        return head


ProgressFn = Callable[[DownloadProgress], None]


class _Meter:
    """Counts bytes, works out the speed over a sliding window and throttles the callbacks."""

    def __init__(self, plan: DownloadPlan, callback: ProgressFn | None, clock: Callable[[], float]) -> None:
        self.callback = callback
        self.clock = clock
        self.completed = 0  # bytes of the files that are whole (verified or just downloaded)
        self.net = 0  # bytes received over the network in this run, for the speed
        self.samples: deque[tuple[float, int]] = deque()
        self.last_emit = -1e9
        self.state = DownloadProgress(plan.repo_id, "check", "", 0, len(plan.files), 0, plan.total_bytes, 0, 0)

    def speed(self) -> float | None:
        """Bytes per second over the window; None until a second's worth of samples (an early guess misleads)."""
        if len(self.samples) < 2:
            return None
        (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 - t0 >= MIN_SPEED_SPAN_S else None

    def received(self, n: int) -> None:
        """n new bytes came over the network."""
        self.net += n
        now = self.clock()
        self.samples.append((now, self.net))
        while len(self.samples) > 2 and now - self.samples[0][0] > SPEED_WINDOW_S:
            self.samples.popleft()

    def pause(self) -> None:
        """A stall or a retry: the old samples would overstate the speed."""
        self.samples.clear()

    def at(self, file_done: int, *, force: bool = False, **changes: Any) -> None:
        """Report `file_done` bytes of the current file on disk (and any other changes)."""
        self.emit(force=force, file_done=file_done, done_bytes=self.completed + file_done, **changes)

    def emit(self, force: bool = False, **changes: Any) -> None:
        self.state = replace(self.state, **changes)
        if self.callback is None:
            return
        now = self.clock()
        if not force and now - self.last_emit < PROGRESS_INTERVAL_S:
            return
        self.last_emit = now
        speed = self.speed() if self.state.phase == "download" else None
        left = self.state.total_bytes - self.state.done_bytes
        eta = left / speed if speed else None
        self.callback(replace(self.state, speed=speed, eta=eta))


# -- errors the user sees ----------------------------------------------------------------------------


def offline_error(name: str, cause: object | None = None) -> NetworkError:
    """The network is down: say so, and offer what is already on this computer."""
    from gptdesk.models.manage import local_model_names

    here = ", ".join(local_model_names()) or "embedded"
    detail = f" ({cause})" if cause else ""
    return NetworkError(
        Text(
            f"Cannot reach the model hub to download '{name}'{detail} (no network?). Connect and retry, set "
            f"a mirror in HF_ENDPOINT, or use a model that is already on this computer ({here}) or open a "
            "model folder.",
            f"Не удаётся связаться с хабом моделей, чтобы скачать «{name}»{detail} (нет сети?). Подключитесь "
            f"и повторите, задайте зеркало в HF_ENDPOINT или возьмите модель, которая уже есть на этом "
            f"компьютере ({here}), или откройте папку модели.",
        )
    )


def _offline_mode_error(name: str) -> NetworkError:
    return NetworkError(
        Text(
            f"Cannot reach the model hub to download '{name}': HF_HUB_OFFLINE is set, so nothing may be "
            "downloaded. Unset HF_HUB_OFFLINE and retry, or open a model folder that is on this computer.",
            f"Не удаётся связаться с хабом моделей, чтобы скачать «{name}»: задан HF_HUB_OFFLINE, и скачивать "
            "ничего нельзя. Уберите HF_HUB_OFFLINE и повторите или откройте папку модели на этом компьютере.",
        )
    )


def _is_transient(exc: BaseException) -> bool:
    """A dropped or refused connection, a timeout, or a server-side hiccup (5xx, 408, 429)."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return False
    if isinstance(exc, httpx2.TransportError | TimeoutError | ConnectionError):
        return True
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return exc.response.status_code in (408, 429) or exc.response.status_code >= 500
    return False


def _is_unreachable(exc: BaseException) -> bool:
    import httpx2

    return isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout | ConnectionRefusedError)


# -- planning ----------------------------------------------------------------------------------------


def plan(
    name: str, *, hub: HubSettings | None = None, revision: str = "main", retry: RetryPolicy | None = None
) -> DownloadPlan:
    """Ask the hub which files a model has at `revision`, their sizes and checksums (needs the network)."""
    from huggingface_hub import HfApi, hf_hub_url
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    hub = hub or HubSettings()
    text = name.strip()
    entry = find_entry(text)
    if not text or (entry is not None and entry.id == EMBEDDED_ID):
        raise InvalidInputError(
            Text(
                f"'{text or name}' is not a hub model: the embedded model ships inside GPT Desk and needs no "
                "download. Name a catalog model (`gptdesk models`) or a hub id such as owner/name.",
                f"«{text or name}» — не модель с хаба: встроенная модель входит в GPT Desk, скачивать её не "
                "нужно. Укажите модель из каталога (`gptdesk models`) или id на хабе вида владелец/имя.",
            )
        )
    if hub_offline():
        raise _offline_mode_error(text)
    endpoint = hub.resolved_endpoint()
    token = hub.resolved_token()
    retry = retry or RetryPolicy()
    timeout = retry.timeout()
    api = HfApi(endpoint=endpoint, token=token or False)
    last: Exception | None = None
    for repo_id in hub_candidates(text):
        try:
            info = api.model_info(
                repo_id, revision=None if revision == "main" else revision, files_metadata=True, timeout=timeout
            )
        except GatedRepoError as exc:
            raise ModelError(
                Text(
                    f"'{repo_id}' is gated or private on the hub: accept its terms on its page and set an access "
                    "token (HF_TOKEN, `hf auth login`, or the token field of the hub settings).",
                    f"«{repo_id}» на хабе закрыта или требует согласия с условиями: примите их на странице "
                    "модели и задайте токен доступа (HF_TOKEN, `hf auth login` или поле токена в настройках хаба).",
                )
            ) from exc
        except RepositoryNotFoundError as exc:
            last = exc
            continue
        except RevisionNotFoundError as exc:
            raise ModelError(
                Text(
                    f"'{repo_id}' has no revision '{revision}'. Use 'main' or a commit, branch or tag that exists.",
                    f"У «{repo_id}» нет ревизии «{revision}». Укажите «main» или существующий коммит, ветку или тег.",
                )
            ) from exc
        except OfflineModeIsEnabled as exc:
            raise _offline_mode_error(text) from exc
        except (ValueError, KeyError, TypeError) as exc:
            # HTML (a captive portal, a web page) or JSON that is not a model's: json.JSONDecodeError
            # is a ValueError, and ModelInfo(**data) raises KeyError/TypeError on missing fields.
            raise _not_a_hub_answer(endpoint, repo_id, exc) from exc
        except Exception as exc:
            if _is_transient(exc):
                raise _unreachable(text, endpoint, exc, retry) from exc
            raise
        siblings = {s.rfilename: s for s in (info.siblings or [])}
        wanted = select_files(set(siblings))
        if "config.json" not in wanted or not any(n.endswith((".safetensors", ".bin")) for n in wanted):
            raise ModelError(
                Text(
                    f"'{repo_id}' on the hub has no config.json and weights that GPT Desk can load "
                    f"(it has: {', '.join(sorted(siblings)[:12]) or 'no files'}). Choose a GPT-2 model in "
                    "transformers format, e.g. one from `gptdesk models`.",
                    f"В «{repo_id}» на хабе нет config.json и весов, которые может загрузить GPT Desk "
                    f"(там есть: {', '.join(sorted(siblings)[:12]) or 'ничего'}). Выберите модель GPT-2 в "
                    "формате transformers, например из `gptdesk models`.",
                )
            )
        commit = info.sha or ""
        files: list[HubFile] = []
        for filename in wanted:
            sib = siblings[filename]
            try:
                meta = _file_metadata(
                    hf_hub_url(repo_id, filename, revision=commit or revision, endpoint=endpoint),
                    token=token or False,
                    endpoint=endpoint,
                    retry=retry,
                )
            except HfHubHTTPError as exc:
                if _is_transient(exc):
                    raise _unreachable(text, endpoint, exc, retry) from exc
                raise ModelError(
                    Text(
                        f"The hub refused '{filename}' of '{repo_id}': {_short(exc)}. Retry later, or check the "
                        "access token and HF_ENDPOINT.",
                        f"Хаб не отдал «{filename}» из «{repo_id}»: {_short(exc)}. Повторите позже или "
                        "проверьте токен доступа и HF_ENDPOINT.",
                    )
                ) from exc
            except Exception as exc:
                if _is_transient(exc):
                    raise _unreachable(text, endpoint, exc, retry) from exc
                raise
            commit = commit or (meta.commit_hash or "")
            lfs = sib.lfs
            sha256 = lfs.sha256 if lfs is not None else None
            size = (lfs.size if lfs is not None else None) or sib.size or meta.size
            etag = meta.etag or sha256 or sib.blob_id
            if size is None or not etag:
                raise ModelError(
                    Text(
                        f"The hub at {endpoint} gave no size or ETag for '{filename}' of '{repo_id}', so the "
                        "download could not be checked. If HF_ENDPOINT is a mirror, it is not a complete one: "
                        "use another mirror or the hub itself.",
                        f"Хаб {endpoint} не сообщил размер или ETag файла «{filename}» из «{repo_id}», и "
                        "проверить загрузку нельзя. Если HF_ENDPOINT — зеркало, то неполное: возьмите другое "
                        "зеркало или сам хаб.",
                    )
                )
            files.append(
                HubFile(
                    name=filename,
                    size=int(size),
                    etag=etag,
                    sha256=sha256,
                    git_oid=sib.blob_id if lfs is None else None,
                    url=meta.location,
                )
            )
        if not commit:
            raise ModelError(
                Text(
                    f"The hub at {endpoint} did not say which commit of '{repo_id}' it serves. If HF_ENDPOINT "
                    "is a mirror, it is not a Hugging Face–compatible one.",
                    f"Хаб {endpoint} не сообщил, какой коммит «{repo_id}» он отдаёт. Если HF_ENDPOINT — "
                    "зеркало, оно несовместимо с Hugging Face.",
                )
            )
        return DownloadPlan(text, repo_id, commit, revision, tuple(files), hub.resolved_cache(), endpoint)
    raise ModelNotFoundError(
        Text(
            f"No model '{text}' on the hub at {endpoint} ({_short(last)}). Check the spelling (owner/name), set "
            "an access token for a private model, or see `gptdesk models` for the catalog.",
            f"Модели «{text}» нет на хабе {endpoint} ({_short(last)}). Проверьте написание (владелец/имя), "
            "задайте токен для закрытой модели или см. каталог: `gptdesk models`.",
        )
    )


def _unreachable(name: str, endpoint: str, exc: BaseException, retry: RetryPolicy) -> NetworkError:
    """A hub that does not answer in time is named as such; anything else reads as no network."""
    import httpx2

    if not isinstance(exc, httpx2.TimeoutException | TimeoutError) or isinstance(exc, httpx2.ConnectTimeout):
        return offline_error(name, _short(exc))
    wait = f"{retry.read_timeout_s:g}"
    return NetworkError(
        Text(
            f"The hub at {endpoint} took the request for '{name}' but did not answer within {wait} s. If "
            "HF_ENDPOINT is a mirror, it may be down or overloaded: retry later, use another mirror, or unset "
            "HF_ENDPOINT (HF_HUB_DOWNLOAD_TIMEOUT sets how long to wait).",
            f"Хаб {endpoint} принял запрос «{name}», но не ответил за {wait} с. Если HF_ENDPOINT — зеркало, "
            "оно, возможно, не работает или перегружено: повторите позже, возьмите другое зеркало или уберите "
            "HF_ENDPOINT (HF_HUB_DOWNLOAD_TIMEOUT задаёт, сколько ждать).",
        )
    )


def _file_metadata(url: str, *, token: str | bool, endpoint: str, retry: RetryPolicy) -> Any:
    """One file's HEAD. The hub answered model_info a moment ago, so a failure now is a hiccup worth
    retrying, the way the transfer retries (huggingface_hub's own retry_on_errors waits too long)."""
    from huggingface_hub import get_hf_file_metadata

    failures = 0
    while True:
        try:
            return get_hf_file_metadata(url, token=token, endpoint=endpoint, timeout=retry.timeout())
        except Exception as exc:
            failures += 1
            if not _is_transient(exc) or failures >= retry.attempts:
                raise
            time.sleep(retry.delay(failures))


def _not_a_hub_answer(endpoint: str, repo_id: str, exc: BaseException) -> ModelError:
    what = "a web page or text" if isinstance(exc, ValueError) and not isinstance(exc, TypeError) else "JSON"
    what_ru = "веб-страницей или текстом" if what != "JSON" else "JSON другого вида"
    return ModelError(
        Text(
            f"The hub at {endpoint} answered the request for '{repo_id}' with {what}, not the model "
            f"information the Hugging Face hub sends ({type(exc).__name__}: {_short(exc)}). If HF_ENDPOINT is "
            "a mirror, it is not a Hugging Face–compatible one (or a login page stands in the way): check the "
            "address, use another mirror, or unset HF_ENDPOINT.",
            f"Хаб {endpoint} ответил на запрос «{repo_id}» {what_ru}, а не сведениями о модели, как хаб "
            f"Hugging Face ({type(exc).__name__}: {_short(exc)}). Если HF_ENDPOINT — зеркало, оно несовместимо "
            "с Hugging Face (или мешает страница входа): проверьте адрес, возьмите другое зеркало или уберите "
            "HF_ENDPOINT.",
        )
    )


# -- disk --------------------------------------------------------------------------------------------


def free_disk_space(path: Path) -> int:
    """Free bytes on the disk that holds `path` (or its nearest existing parent)."""
    probe = Path(path).resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return int(shutil.disk_usage(probe).free)


def check_disk_space(plan: DownloadPlan, free_space: FreeSpace | None = None) -> None:
    """Refuse a download that would not fit (with RESERVE_BYTES to spare), naming the sizes."""
    need = plan.missing_bytes()
    if need <= 0:
        return
    free = (free_space or free_disk_space)(plan.cache_dir)
    if free >= need + RESERVE_BYTES:
        return
    raise DiskSpaceError(
        Text(
            "Not enough disk space to download {name}: it needs {need} more in {dir} (and {reserve} is kept "
            "free), but only {free} is free there. Free at least {short}, or set HF_HUB_CACHE to a folder on "
            "a disk with more room.",
            "Не хватает места на диске, чтобы скачать {name}: нужно ещё {need:ru} в {dir} (и {reserve:ru} "
            "остаётся свободным), а свободно только {free:ru}. Освободите не меньше {short:ru} или укажите в "
            "HF_HUB_CACHE папку на диске, где места больше.",
        ).format(
            name=plan.repo_id,
            need=_Size(need),
            reserve=_Size(RESERVE_BYTES),
            free=_Size(free),
            short=_Size(need + RESERVE_BYTES - free),
            dir=plan.cache_dir,
        )
    )


def _disk_full(plan: DownloadPlan, f: HubFile, exc: OSError) -> DiskSpaceError:
    return DiskSpaceError(
        Text(
            f"The disk filled up while downloading {f.name} of {plan.repo_id} into {plan.cache_dir} ({exc}). "
            "What was downloaded is kept: free some space and run the download again to resume.",
            f"Диск заполнился во время загрузки {f.name} из {plan.repo_id} в {plan.cache_dir} ({exc}). "
            "Скачанное сохранено: освободите место и запустите загрузку снова, она продолжится.",
        )
    )


# -- integrity ---------------------------------------------------------------------------------------


class _Digest:
    """sha256 of the content (LFS files) or git's sha1 of "blob <size>\\0" + content (small files)."""

    def __init__(self, kind: str, size: int) -> None:
        self.kind = kind
        if kind == "git-sha1":
            self.h = hashlib.sha1(usedforsecurity=False)
            self.h.update(f"blob {size}\0".encode())
        else:
            self.h = hashlib.sha256()

    def update(self, data: bytes | memoryview) -> None:
        self.h.update(data)

    def hexdigest(self) -> str:
        return self.h.hexdigest()


def file_matches(path: Path, f: HubFile, progress: Callable[[int], None] | None = None) -> bool:
    """True when the file on disk has the size and checksum the hub published for `f`."""
    try:
        if path.stat().st_size != f.size:
            return False
    except OSError:
        return False
    check = f.digest
    if check is None:
        return True
    digest = _Digest(check[0], f.size)
    _hash_into(path, digest, f.size, progress)
    return digest.hexdigest() == check[1]


def _hash_into(path: Path, digest: _Digest, limit: int, progress: Callable[[int], None] | None = None) -> None:
    read = 0
    with path.open("rb") as fh:
        while read < limit:
            block = fh.read(min(4 << 20, limit - read))
            if not block:
                break
            digest.update(block)
            read += len(block)
            if progress is not None:
                progress(read)


# -- the download ------------------------------------------------------------------------------------


class _Restart(Exception):
    """The partial file cannot be continued (the server's range did not fit it): start the file over."""


@dataclass
class _Transfer:
    """One file's download state, kept across retries."""

    failures: int = 0  # tries in a row that brought no byte
    restarts: int = 0
    bad_checksums: int = 0
    resumed: int = 0  # bytes an earlier run had left in the partial file


def pull(
    name: str,
    *,
    hub: HubSettings | None = None,
    revision: str = "main",
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    free_space: FreeSpace | None = None,
    retry: RetryPolicy | None = None,
    verify_existing: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> Path:
    """Download a model's files into the Hugging Face cache and return its snapshot folder.

    Files already in the cache are checked against the hub's checksums (and fetched again when they
    do not match); a partial file left by an interrupted run is resumed with an HTTP Range request.
    The snapshot and refs/<revision> are written only once every file is complete and verified, so
    a cancelled or failed download never looks like a usable model.
    """
    the_plan = plan(name, hub=hub, revision=revision, retry=retry)
    return fetch(
        the_plan,
        hub=hub,
        progress=progress,
        cancel=cancel,
        free_space=free_space,
        retry=retry,
        verify_existing=verify_existing,
        clock=clock,
    )


def fetch(
    the_plan: DownloadPlan,
    *,
    hub: HubSettings | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    free_space: FreeSpace | None = None,
    retry: RetryPolicy | None = None,
    verify_existing: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> Path:
    """Carry out a plan made by plan(): see pull()."""
    hub = hub or HubSettings()
    cancel = cancel or threading.Event()
    retry = retry or RetryPolicy()
    check_disk_space(the_plan, free_space)
    meter = _Meter(the_plan, progress, clock)
    (the_plan.repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    _tag_cache(the_plan.cache_dir)
    try:
        _fetch_files(the_plan, hub, meter, cancel, retry, verify_existing)
    except KeyboardInterrupt:
        # Ctrl+C in a terminal arrives here at once, even inside a read that a stalled server keeps
        # waiting: the same clean stop as Cancel (the partial file stays for the next run).
        cancel.set()
        _raise_if_cancelled(cancel, the_plan)
        raise
    _register(the_plan)
    meter.emit(force=True, phase="done", done_bytes=the_plan.total_bytes, file_done=0, note=None)
    return the_plan.snapshot_dir


def _fetch_files(
    the_plan: DownloadPlan,
    hub: HubSettings,
    meter: _Meter,
    cancel: threading.Event,
    retry: RetryPolicy,
    verify_existing: bool,
) -> None:
    from huggingface_hub.errors import OfflineModeIsEnabled

    for index, f in enumerate(the_plan.files, start=1):
        _raise_if_cancelled(cancel, the_plan)
        meter.at(0, force=True, phase="check", filename=f.name, file_index=index, file_total=f.size, note=None)
        with _file_lock(the_plan, f, cancel, meter):
            blob = the_plan.blob_path(f)
            if blob.is_file():
                if not verify_existing or _verify(f, blob, meter):
                    meter.completed += f.size
                    meter.at(0, force=True)
                    continue
                # A damaged copy: drop it (its snapshot link is remade below) and fetch it again.
                blob.unlink()
                meter.at(
                    0,
                    force=True,
                    phase="retry",
                    note=Text(
                        "the copy in the cache is damaged (checksum mismatch); downloading it again",
                        "копия в кэше повреждена (контрольная сумма не совпала); скачиваю заново",
                    ),
                )
            try:
                _download_file(the_plan, f, hub, meter, cancel, retry)
            except OfflineModeIsEnabled as exc:
                raise _offline_mode_error(the_plan.name) from exc
        meter.completed += f.size
        meter.at(0, force=True)


def _verify(f: HubFile, path: Path, meter: _Meter) -> bool:
    meter.at(0, force=True, phase="verify")
    return file_matches(path, f, lambda n: meter.at(n, phase="verify"))


def _raise_if_cancelled(cancel: threading.Event, the_plan: DownloadPlan) -> None:
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
def _file_lock(the_plan: DownloadPlan, f: HubFile, cancel: threading.Event, meter: _Meter) -> Iterator[None]:
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
            _raise_if_cancelled(cancel, the_plan)
            continue
        try:
            yield
        finally:
            lock.__exit__(None, None, None)
        return


def _download_file(
    the_plan: DownloadPlan,
    f: HubFile,
    hub: HubSettings,
    meter: _Meter,
    cancel: threading.Event,
    retry: RetryPolicy,
) -> None:
    """Fetch one file into <etag>.incomplete (resuming what is there), check it, move it into blobs/."""
    part = the_plan.partial_path(f)
    state = _Transfer()
    url = f.url
    while True:
        _raise_if_cancelled(cancel, the_plan)
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
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _disk_full(the_plan, f, exc) from exc
            if not _is_transient(exc):
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
    meter: _Meter,
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
                f"{the_plan.repo_id} ({_short(exc)}; {state.failures} tries). {format_bytes(kept)} of "
                f"{format_bytes(the_plan.total_bytes)} are downloaded and kept: run the download again to resume "
                "from there, or set HF_ENDPOINT to a mirror.",
                f"Соединение с {the_plan.endpoint} всё время обрывается при загрузке {f.name} из "
                f"{the_plan.repo_id} ({_short(exc)}; попыток: {state.failures}). Скачано и сохранено "
                f"{format_bytes(kept, 'ru')} из {format_bytes(the_plan.total_bytes, 'ru')}: запустите загрузку "
                "снова, чтобы продолжить, или задайте зеркало в HF_ENDPOINT.",
            )
        ) from exc
    delay = retry.delay(state.failures)
    meter.emit(
        force=True,
        phase="retry",
        note=Text(
            f"connection lost ({_short(exc)}); retrying in {delay:.0f} s "
            f"(try {state.failures + 1} of {retry.attempts})",
            f"соединение прервалось ({_short(exc)}); повтор через {delay:.0f} с "
            f"(попытка {state.failures + 1} из {retry.attempts})",
        ),
    )
    if cancel.wait(delay):
        _raise_if_cancelled(cancel, the_plan)
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
    meter: _Meter,
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
    digest = _Digest(check[0], f.size) if check is not None else None
    if offset and digest is not None:
        # The bytes already on disk go into the checksum first (the bar stays where they put it).
        meter.at(offset, force=True, phase="verify", note=None)
        _hash_into(part, digest, offset)
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
            digest = _Digest(check[0], f.size) if check is not None else None
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
    _raise_if_cancelled(cancel, the_plan)
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


# -- the cache ---------------------------------------------------------------------------------------


def _register(the_plan: DownloadPlan) -> None:
    """Make the snapshot (links to the blobs) and only then point refs/<revision> at it."""
    snap = the_plan.snapshot_dir
    snap.mkdir(parents=True, exist_ok=True)
    for f in the_plan.files:
        blob = the_plan.blob_path(f)
        pointer = snap / f.name
        pointer.parent.mkdir(parents=True, exist_ok=True)
        if pointer.is_symlink() and pointer.resolve() == blob.resolve() and pointer.exists():
            continue
        if pointer.exists() or pointer.is_symlink():
            pointer.unlink()
        try:
            os.symlink(os.path.relpath(blob, pointer.parent), pointer)
        except OSError:  # no symlinks (Windows without developer mode): a copy, as huggingface_hub does
            shutil.copy2(blob, pointer)
    if not _HEX40.match(the_plan.revision):
        refs = the_plan.repo_dir / "refs" / the_plan.revision
        refs.parent.mkdir(parents=True, exist_ok=True)
        tmp = refs.with_name(refs.name + f".{os.getpid()}.tmp")
        tmp.write_text(the_plan.commit)
        os.replace(tmp, refs)


def _tag_cache(cache_dir: Path) -> None:
    """Mark the cache for backup tools to skip, as huggingface_hub does (CACHEDIR.TAG)."""
    tag = cache_dir / "CACHEDIR.TAG"
    if not tag.exists():
        with suppress(OSError):
            tag.write_text(
                "Signature: 8a477f597d28d172789f06886806bc55\n"
                "# This file is a cache directory tag created by huggingface_hub / GPT Desk.\n"
            )


# -- small helpers -----------------------------------------------------------------------------------


def _short(exc: object) -> str:
    text = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "…"


class _Size:
    def __init__(self, n: float) -> None:
        self.n = n

    def __format__(self, spec: str) -> str:
        return format_bytes(self.n, "ru" if spec == "ru" else "en")


class _Duration:
    def __init__(self, seconds: float) -> None:
        self.s = max(0, round(seconds))

    def __format__(self, spec: str) -> str:
        ru = spec == "ru"
        h, rest = divmod(self.s, 3600)
        m, s = divmod(rest, 60)
        if h:
            return f"{h} ч {m} мин" if ru else f"{h} h {m} min"
        if m:
            return f"{m} мин {s} с" if ru else f"{m} min {s} s"
        return f"{s} с" if ru else f"{s} s"


def format_duration(seconds: float, lang: str = "en") -> str:
    return format(_Duration(seconds), "ru" if lang == "ru" else "")


__all__ = [
    "DEFAULT_ENDPOINT",
    "RESERVE_BYTES",
    "DiskSpaceError",
    "DownloadCancelled",
    "DownloadPlan",
    "DownloadProgress",
    "HubFile",
    "HubSettings",
    "RetryPolicy",
    "check_disk_space",
    "fetch",
    "file_matches",
    "format_duration",
    "free_disk_space",
    "offline_error",
    "plan",
    "pull",
    "select_files",
]
