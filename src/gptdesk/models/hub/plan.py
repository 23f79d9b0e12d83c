"""What a download fetches: a model's files on the hub, their sizes and checksums, found before any byte moves."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptdesk.errors import InvalidInputError, ModelError, ModelNotFoundError, NetworkError
from gptdesk.i18n import Text
from gptdesk.models.catalog import EMBEDDED_ID, find_entry
from gptdesk.models.hub.errors import is_transient, offline_error, offline_mode_error, short
from gptdesk.models.hub.settings import HubSettings, RetryPolicy
from gptdesk.models.locate import NEEDED_FILES, hub_candidates, hub_offline

#: Weight files, best first: safetensors (safe to load and mmapped), then the old pickle format.
_SAFETENSORS = re.compile(r"^model(-\d{5}-of-\d{5})?\.safetensors$")
_PICKLE = re.compile(r"^pytorch_model(-\d{5}-of-\d{5})?\.bin$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
COMMIT_HASH = re.compile(r"^[0-9a-f]{40}$")


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
        if COMMIT_HASH.match(self.etag):
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
        raise offline_mode_error(text)
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
            raise offline_mode_error(text) from exc
        except (ValueError, KeyError, TypeError) as exc:
            # HTML (a captive portal, a web page) or JSON that is not a model's: json.JSONDecodeError
            # is a ValueError, and ModelInfo(**data) raises KeyError/TypeError on missing fields.
            raise _not_a_hub_answer(endpoint, repo_id, exc) from exc
        except Exception as exc:
            if is_transient(exc):
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
                if is_transient(exc):
                    raise _unreachable(text, endpoint, exc, retry) from exc
                raise ModelError(
                    Text(
                        f"The hub refused '{filename}' of '{repo_id}': {short(exc)}. Retry later, or check the "
                        "access token and HF_ENDPOINT.",
                        f"Хаб не отдал «{filename}» из «{repo_id}»: {short(exc)}. Повторите позже или "
                        "проверьте токен доступа и HF_ENDPOINT.",
                    )
                ) from exc
            except Exception as exc:
                if is_transient(exc):
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
            f"No model '{text}' on the hub at {endpoint} ({short(last)}). Check the spelling (owner/name), set "
            "an access token for a private model, or see `gptdesk models` for the catalog.",
            f"Модели «{text}» нет на хабе {endpoint} ({short(last)}). Проверьте написание (владелец/имя), "
            "задайте токен для закрытой модели или см. каталог: `gptdesk models`.",
        )
    )


def _unreachable(name: str, endpoint: str, exc: BaseException, retry: RetryPolicy) -> NetworkError:
    """A hub that does not answer in time is named as such; anything else reads as no network."""
    import httpx2

    if not isinstance(exc, httpx2.TimeoutException | TimeoutError) or isinstance(exc, httpx2.ConnectTimeout):
        return offline_error(name, short(exc))
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
            if not is_transient(exc) or failures >= retry.attempts:
                raise
            time.sleep(retry.delay(failures))


def _not_a_hub_answer(endpoint: str, repo_id: str, exc: BaseException) -> ModelError:
    what = "a web page or text" if isinstance(exc, ValueError) and not isinstance(exc, TypeError) else "JSON"
    what_ru = "веб-страницей или текстом" if what != "JSON" else "JSON другого вида"
    return ModelError(
        Text(
            f"The hub at {endpoint} answered the request for '{repo_id}' with {what}, not the model "
            f"information the Hugging Face hub sends ({type(exc).__name__}: {short(exc)}). If HF_ENDPOINT is "
            "a mirror, it is not a Hugging Face–compatible one (or a login page stands in the way): check the "
            "address, use another mirror, or unset HF_ENDPOINT.",
            f"Хаб {endpoint} ответил на запрос «{repo_id}» {what_ru}, а не сведениями о модели, как хаб "
            f"Hugging Face ({type(exc).__name__}: {short(exc)}). Если HF_ENDPOINT — зеркало, оно несовместимо "
            "с Hugging Face (или мешает страница входа): проверьте адрес, возьмите другое зеркало или уберите "
            "HF_ENDPOINT.",
        )
    )
