"""The models on this computer: the catalog and the Hugging Face cache, sizes, memory needs, deleting."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from gptdesk.errors import InvalidInputError, ModelNotFoundError
from gptdesk.i18n import Text
from gptdesk.models.catalog import CATALOG, EMBEDDED_ID, CatalogEntry, find_entry
from gptdesk.models.cost import available_memory, estimate, fits_in_memory
from gptdesk.models.gguf.convert import QUANT_TYPES, estimated_file_bytes
from gptdesk.models.gguf.converted import ConvertedFile, converted_for, list_converted, remove_file
from gptdesk.models.locate import EMBEDDED_PATH, SUPPORTED_MODEL_TYPES, hub_cache_dir, hub_candidates
from gptdesk.models.shape import DTYPE_BYTES, ModelShape

if TYPE_CHECKING:
    from gptdesk.models.measured import Measurements, QualityEntry, SpeedEntry

#: The dtypes whose memory the manager shows: full precision, half precision, and the quantized engine's.
SHOWN_DTYPES: tuple[str, ...] = ("float32", "bfloat16", "q8_0")
#: The generation the "RAM needed" figures are for: a short prompt and a paragraph of output.
TYPICAL_PROMPT_TOKENS = 64
TYPICAL_NEW_TOKENS = 100
#: The llama.cpp types whose costs the manager compares with transformers fp32 (the reference row,
#: type "f32"; llama.cpp's own f32 is an exact copy kept for tests, not a choice worth showing).
COST_TYPES: tuple[str, ...] = tuple(q for q in QUANT_TYPES if q != "f32")
#: The estimate's dtype for each type name (the llama.cpp types' own names, but f16 and f32).
_ESTIMATE_DTYPE = {"f32": "float32", "f16": "float16"}
_TORCH_DTYPES = ("float32", "float16", "bfloat16")

Status = Literal["embedded", "ready", "partial", "absent"]


@dataclass(frozen=True)
class ModelRow:
    """One model for the manager: what it is, what is on disk, and what it needs to run."""

    id: str  # what resolve() and the engines accept: the catalog id, or the hub id
    name: str  # a short name for the command line (the hub id for models outside the catalog)
    title: Text
    aliases: tuple[str, ...]
    in_catalog: bool
    licence: str
    params: int | None
    download_bytes: int | None  # what a download of the weights costs (catalog figure)
    disk_bytes: int  # on disk now, partial files included, under every org name
    partial_bytes: int  # of which in unfinished downloads
    local_path: Path | None  # the usable folder (a cache snapshot or the embedded model)
    ram_bytes: dict[str, int] = field(default_factory=dict)  # per dtype, for a typical generation
    fits: dict[str, bool] = field(default_factory=dict)  # whether this machine has that memory now
    repo_dirs: tuple[Path, ...] = ()
    converted: tuple[ConvertedFile, ...] = ()  # its GGUF copies for the llama.cpp engine
    shape: ModelShape | None = None  # None: a partial download whose config is not there yet

    @property
    def converted_bytes(self) -> int:
        return sum(f.bytes for f in self.converted)

    @property
    def status(self) -> Status:
        if self.id == EMBEDDED_ID:
            return "embedded"
        if self.local_path is not None:
            return "ready"
        if self.disk_bytes > 0:
            return "partial"
        return "absent"

    def status_text(self) -> Text:
        return {
            "embedded": Text("built in", "встроена"),
            "ready": Text("downloaded", "скачана"),
            "partial": Text("partly downloaded", "скачана частично"),
            "absent": Text("not downloaded", "не скачана"),
        }[self.status]


@dataclass(frozen=True)
class CachedRepo:
    """A model repository in the Hugging Face cache."""

    repo_id: str
    path: Path
    snapshot: Path | None  # refs/main's snapshot, when it holds a config.json
    disk_bytes: int
    partial_bytes: int


def repo_dir(repo_id: str, cache_dir: Path | None = None) -> Path:
    return (cache_dir or hub_cache_dir()) / ("models--" + repo_id.replace("/", "--"))


def scan_cache(cache_dir: Path | None = None) -> list[CachedRepo]:
    """The model repositories in the cache, with their size on disk (read-only, never raises on a bad repo)."""
    root = cache_dir or hub_cache_dir()
    if not root.is_dir():
        return []
    repos: list[CachedRepo] = []
    for path in sorted(root.glob("models--*")):
        if not path.is_dir():
            continue
        repo_id = "/".join(path.name[len("models--") :].split("--"))
        disk = partial = 0
        for sub in ("blobs", "snapshots"):
            for f in (path / sub).rglob("*") if (path / sub).is_dir() else ():
                if f.is_symlink() or not f.is_file():
                    continue
                size = f.stat().st_size
                disk += size
                if f.name.endswith(".incomplete"):
                    partial += size
        repos.append(CachedRepo(repo_id, path, _snapshot(path), disk, partial))
    return repos


def _snapshot(path: Path) -> Path | None:
    ref = path / "refs" / "main"
    try:
        commit = ref.read_text().strip()
    except OSError:
        return None
    snap = path / "snapshots" / commit
    return snap if (snap / "config.json").exists() else None


def _shape_of(folder: Path) -> ModelShape | None:
    """The GPT-2 shape in a folder's config.json, or None when it is not a GPT-2 model."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        if config.get("model_type") not in SUPPORTED_MODEL_TYPES:
            return None
        return ModelShape.from_config(config)
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def memory_needs(
    shape: ModelShape, available: int, dtypes: Sequence[str] = SHOWN_DTYPES, *, engine: str | None = None
) -> tuple[dict[str, int], dict[str, bool]]:
    """RAM per dtype for a typical generation, and whether it fits the memory available now.

    "Fits" is the test the engines apply before loading (estimate.check_affordable, with its 10%
    margin), so a model shown as fitting is not refused at load time for lack of memory. `engine`
    is the one whose allocations are counted; by default transformers for torch dtypes and llama.cpp
    for its types (q8_0 runs only there, without torch's runtime).
    """
    ram: dict[str, int] = {}
    fits: dict[str, bool] = {}
    for dtype in dtypes:
        cost = estimate(
            shape,
            dtype=dtype,
            prompt_tokens=TYPICAL_PROMPT_TOKENS,
            max_new_tokens=TYPICAL_NEW_TOKENS,
            engine=engine or ("transformers" if dtype in _TORCH_DTYPES else "llamacpp"),
        )
        ram[dtype] = cost.total_bytes
        fits[dtype] = fits_in_memory(cost, weights_loaded=False, available=available)
    return ram, fits


@dataclass(frozen=True)
class TypeCost:
    """What running a model at one type costs: file, memory, measured speed and quality."""

    type: str  # "f32" for the reference row (transformers fp32), else a llama.cpp type
    engine: str  # transformers or llamacpp
    file_bytes: int | None  # None: the model's shape is unknown
    file_path: Path | None  # the cached GGUF when there is one (file_bytes is then its real size)
    ram_bytes: int | None
    fits: bool
    speed: SpeedEntry | None  # the newest bench row for a model of exactly this shape
    quality: tuple[QualityEntry, ...]  # the newest measure on each text, newest text first
    # The newest measure against f32 (or f16) on the same text: (that type, percent of bits/char more).
    versus: tuple[str, float] | None


def type_costs(row: ModelRow, available: int, measurements: Measurements) -> list[TypeCost]:
    """The reference row (transformers fp32), then each llama.cpp type in COST_TYPES, for one model.

    Reads nothing but the row and `measurements`: the GGUF sizes come from the row's converted files.
    """
    shape = row.shape
    speeds = measurements.speed_for(shape.n_layer, shape.n_embd, shape.vocab_size) if shape is not None else {}
    entry = find_entry(row.id)
    quality = measurements.quality_for(row.id, *(entry.names() if entry is not None else ()))
    costs: list[TypeCost] = []
    for quant in ("f32", *COST_TYPES):
        engine = "transformers" if quant == "f32" else "llamacpp"
        dtype = _ESTIMATE_DTYPE.get(quant, quant)
        cached = next((f for f in row.converted if f.quant == quant), None) if quant != "f32" else None
        file_bytes: int | None = None
        if cached is not None:
            try:
                file_bytes = cached.path.stat().st_size
            except OSError:
                cached = None  # deleted since the table was read: estimate it like the others
        if cached is None and shape is not None:
            # The GGUF file as the converter and llama.cpp's quantizer will make it; the reference
            # row's is the float32 weights themselves.
            file_bytes = (
                int(shape.param_count * DTYPE_BYTES[dtype]) if quant == "f32" else estimated_file_bytes(shape, quant)
            )
        ram, fits = memory_needs(shape, available, (dtype,), engine=engine) if shape is not None else ({}, {})
        measures = tuple(quality.get(quant, ()))
        costs.append(
            TypeCost(
                type=quant,
                engine=engine,
                file_bytes=file_bytes,
                file_path=cached.path if cached is not None else None,
                ram_bytes=ram.get(dtype),
                fits=fits.get(dtype, False),
                speed=_speed(speeds, quant, engine),
                quality=measures,
                versus=_versus(quant, measures, quality),
            )
        )
    return costs


def _speed(speeds: dict[str, SpeedEntry], quant: str, engine: str) -> SpeedEntry | None:
    entry = speeds.get(quant)
    return entry if entry is not None and entry.engine == engine else None


def _versus(
    quant: str, measures: tuple[QualityEntry, ...], quality: dict[str, list[QualityEntry]]
) -> tuple[str, float] | None:
    """The newest measure against the f32 one on the same text (f16 when f32 was not measured on it)."""
    if not measures or quant == "f32":
        return None
    newest = measures[0]
    for ref_type in ("f32", "f16"):
        if ref_type == quant:
            break
        ref = next((e for e in quality.get(ref_type, ()) if e.text_sha256 == newest.text_sha256), None)
        if ref is not None and ref.bits_per_char > 0:
            return ref_type, (newest.bits_per_char - ref.bits_per_char) / ref.bits_per_char * 100
    return None


def list_models(
    cache_dir: Path | None = None, *, available: int | None = None, gguf_cache: Path | None = None
) -> list[ModelRow]:
    """The catalog (downloaded or not), then every other GPT-2 model in the cache, each with its GGUF copies.

    `gguf_cache` is GPT Desk's cache folder (default: GPTDESK_CACHE_DIR or the user cache folder).
    """
    free = available_memory() if available is None else available
    repos = {r.repo_id.lower(): r for r in scan_cache(cache_dir)}
    converted = list_converted(gguf_cache)
    rows: list[ModelRow] = []
    claimed: set[str] = set()
    for entry in CATALOG:
        rows.append(_catalog_row(entry, repos, claimed, free, converted))
    for key, repo in repos.items():
        if key in claimed:
            continue
        shape = _shape_of(repo.snapshot) if repo.snapshot is not None else None
        if shape is None and not (repo.snapshot is None and repo.partial_bytes > 0):
            continue  # another tool's model that GPT Desk cannot run: not ours to show
        ram, fits = memory_needs(shape, free) if shape is not None else ({}, {})
        rows.append(
            ModelRow(
                id=repo.repo_id,
                name=repo.repo_id,
                title=Text(repo.repo_id, repo.repo_id),
                aliases=(),
                in_catalog=False,
                licence="",
                params=shape.param_count if shape is not None else None,
                download_bytes=None,
                disk_bytes=repo.disk_bytes,
                partial_bytes=repo.partial_bytes,
                local_path=repo.snapshot,
                ram_bytes=ram,
                fits=fits,
                repo_dirs=(repo.path,),
                converted=tuple(converted_for(repo.repo_id, converted)),
                shape=shape,
            )
        )
    return rows


def _catalog_row(
    entry: CatalogEntry, repos: dict[str, CachedRepo], claimed: set[str], free: int, converted: list[ConvertedFile]
) -> ModelRow:
    ram, fits = memory_needs(entry.shape, free)
    dirs: tuple[Path, ...] = ()
    if entry.id == EMBEDDED_ID:
        present = (EMBEDDED_PATH / "config.json").exists()
        disk = sum(p.stat().st_size for p in EMBEDDED_PATH.iterdir() if p.is_file()) if present else 0
        partial, local = 0, EMBEDDED_PATH if present else None
    else:
        found = [repos[c.lower()] for c in hub_candidates(entry.id) if c.lower() in repos]
        claimed.update(r.repo_id.lower() for r in found)
        disk = sum(r.disk_bytes for r in found)
        partial = sum(r.partial_bytes for r in found)
        local = next((r.snapshot for r in found if r.snapshot is not None), None)
        dirs = tuple(r.path for r in found)
    return ModelRow(
        id=entry.id,
        name=entry.short,
        title=entry.title,
        aliases=entry.aliases,
        in_catalog=True,
        licence=entry.licence,
        params=entry.n_params,
        download_bytes=entry.download_bytes,
        disk_bytes=disk,
        partial_bytes=partial,
        local_path=local,
        ram_bytes=ram,
        fits=fits,
        repo_dirs=dirs,
        converted=tuple(converted_for(entry.id, converted)),
        shape=entry.shape,
    )


def find_row(name: str, rows: list[ModelRow]) -> ModelRow | None:
    """The row for a catalog name, alias or hub id."""
    entry = find_entry(name)
    key = (entry.id if entry else name.strip()).lower()
    return next((r for r in rows if r.id.lower() == key), None)


def local_model_names(cache_dir: Path | None = None) -> list[str]:
    """Models that work without the network: the embedded one and every complete GPT-2 download."""
    try:
        rows = list_models(cache_dir, available=0)
    except OSError:
        return [EMBEDDED_ID]
    return [r.name for r in rows if r.local_path is not None]


def delete_converted(name: str, gguf_cache: Path | None = None) -> int:
    """Delete a model's GGUF copies (every quantization), the embedded model's too; returns bytes freed."""
    return sum(remove_file(f.path) for f in converted_for(name.strip(), root=gguf_cache))


def delete_model(name: str, cache_dir: Path | None = None, *, gguf_cache: Path | None = None) -> int:
    """Delete a downloaded model (every org name it is cached under, partial files included) and its GGUF
    copies; returns bytes freed."""
    text = name.strip()
    entry = find_entry(text)
    if entry is not None and entry.id == EMBEDDED_ID:
        raise InvalidInputError(
            Text(
                "The embedded model ships inside GPT Desk and cannot be deleted. Name a downloaded model "
                "(see `gptdesk models`).",
                "Встроенная модель входит в GPT Desk, удалить её нельзя. Укажите скачанную модель "
                "(см. `gptdesk models`).",
            )
        )
    root = cache_dir or hub_cache_dir()
    dirs = [repo_dir(c, root) for c in hub_candidates(text)]
    found = [d for d in dirs if d.is_dir()]
    # The converted copies go first: a model removed from the hub cache while its GGUF stays would
    # leave ~0.8 GB per quantization of ruGPT-3 Large that nothing lists as belonging to anything.
    freed = delete_converted(text, gguf_cache)
    if not found and freed:
        return freed
    if not found:
        raise ModelNotFoundError(
            Text(
                f"'{text}' is not in the model cache ({root}), so there is nothing to delete. `gptdesk models` "
                "lists what is there; a model folder of your own is yours to delete.",
                f"«{text}» нет в кэше моделей ({root}), удалять нечего. Что там есть, покажет `gptdesk models`; "
                "свою папку с моделью удалите сами.",
            )
        )
    for repo in scan_cache(root):
        if repo.path in found and not repo.path.is_symlink():
            freed += repo.disk_bytes
    for d in found:
        if d.is_symlink():  # an entry linked to a folder elsewhere: remove the link, never what it points to
            d.unlink()
        else:
            shutil.rmtree(d)
        shutil.rmtree(root / ".locks" / d.name, ignore_errors=True)
    return freed


__all__ = [
    "COST_TYPES",
    "SHOWN_DTYPES",
    "CachedRepo",
    "ModelRow",
    "TypeCost",
    "delete_converted",
    "delete_model",
    "find_row",
    "list_models",
    "local_model_names",
    "memory_needs",
    "repo_dir",
    "scan_cache",
    "type_costs",
]
