"""The settings explorer: one prompt and seed, a grid of settings, every cell generated and measured."""

from __future__ import annotations

import itertools
import random
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gptdesk.engine.base import Engine, Finished, Notice, TokenEvent
from gptdesk.errors import InvalidInputError, SettingIssue, SettingsError
from gptdesk.i18n import Text
from gptdesk.lab.measures import Measures, measure
from gptdesk.lab.source import LogitsSource, encode, logits_source
from gptdesk.settings.generation import GenerationSettings

#: Settings the explorer can sweep, with the type of their values. "preset" sweeps whole presets.
VARIABLE: dict[str, type] = {
    "temperature": float,
    "top_k": int,
    "top_p": float,
    "repetition_penalty": float,
    "no_repeat_ngram_size": int,
    "num_beams": int,
    "preset": str,
}
#: At most this many cells in one grid: each is a full generation.
MAX_CELLS = 64


@dataclass(frozen=True)
class Axis:
    """One swept setting and the values it takes."""

    name: str
    values: tuple[Any, ...]

    def label(self, value: Any) -> str:
        return f"{self.name}={value}"


def parse_axis(spec: str) -> Axis:
    """'temperature=0.5,0.8,1.1' -> Axis('temperature', (0.5, 0.8, 1.1)); bad input names the value and the fix."""
    name, sep, raw = spec.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not raw.strip():
        raise InvalidInputError(
            Text(
                f"--vary '{spec}': write SETTING=V1,V2,..., e.g. temperature=0.5,0.8,1.1.",
                f"--vary «{spec}»: пишите НАСТРОЙКА=З1,З2,..., например temperature=0.5,0.8,1.1.",
            )
        )
    kind = VARIABLE.get(name)
    if kind is None:
        known = ", ".join(VARIABLE)
        raise InvalidInputError(
            Text(
                f"--vary '{name}' cannot be swept: use one of {known}.",
                f"--vary «{name}» нельзя перебирать: используйте одно из {known}.",
            )
        )
    values: list[Any] = []
    for part in raw.split(","):
        part = part.strip()
        try:
            values.append(kind(part))
        except ValueError:
            raise InvalidInputError(
                Text(
                    f"--vary {name}: '{part}' is not a {kind.__name__}; e.g. {name}={_example(name)}.",
                    f"--vary {name}: «{part}» — не {_ru_kind(kind)}; например {name}={_example(name)}.",
                )
            ) from None
    if len(set(values)) != len(values):
        raise InvalidInputError(
            Text(
                f"--vary {name}: a value is given twice ({raw}); list each value once.",
                f"--vary {name}: значение повторено ({raw}); укажите каждое один раз.",
            )
        )
    return Axis(name, tuple(values))


def _example(name: str) -> str:
    return {"top_k": "0,10,40", "no_repeat_ngram_size": "0,3", "num_beams": "1,4", "preset": "balanced,creative"}.get(
        name, "0.8,1.0"
    )


def _ru_kind(kind: type) -> str:
    return {"float": "число", "int": "целое число"}.get(kind.__name__, "строка")


@dataclass(frozen=True)
class Cell:
    """One point of the grid: where it sits and the full settings it runs with (seed included)."""

    index: int
    coords: tuple[Any, ...]  # one value per axis
    settings: GenerationSettings

    def label(self, axes: Sequence[Axis]) -> str:
        return ", ".join(a.label(v) for a, v in zip(axes, self.coords, strict=True))


def plan_grid(base: GenerationSettings, axes: Sequence[Axis]) -> list[Cell]:
    """Every combination of the axes' values over `base`, all with base's seed (a random one if unset)."""
    if not axes or len(axes) > 2:
        raise InvalidInputError(
            Text(
                f"The explorer sweeps one or two settings; {len(axes)} were given. "
                "Use --vary once or twice, e.g. --vary temperature=0.5,1.0 --vary top_p=0.8,0.95.",
                f"Обозреватель перебирает одну или две настройки; задано {len(axes)}. "
                "Укажите --vary один или два раза, например --vary temperature=0.5,1.0 --vary top_p=0.8,0.95.",
            )
        )
    if len({a.name for a in axes}) != len(axes):
        raise InvalidInputError(
            Text(
                f"--vary {axes[0].name} is given twice: sweep two different settings.",
                f"--vary {axes[0].name} задан дважды: перебирайте две разные настройки.",
            )
        )
    count = 1
    for axis in axes:
        count *= len(axis.values)
    if count > MAX_CELLS:
        raise InvalidInputError(
            Text(
                f"The grid has {count} cells; at most {MAX_CELLS} are run at once. Give fewer values.",
                f"В сетке {count} ячеек; за раз выполняется не больше {MAX_CELLS}. Укажите меньше значений.",
            )
        )
    seed = base.seed if base.seed is not None else random.randrange(2**31)
    cells: list[Cell] = []
    for index, coords in enumerate(itertools.product(*(a.values for a in axes))):
        cells.append(Cell(index, tuple(coords), _cell_settings(base, axes, coords, seed)))
    return cells


def _cell_settings(
    base: GenerationSettings, axes: Sequence[Axis], coords: Sequence[Any], seed: int
) -> GenerationSettings:
    from gptdesk.settings.presets import SAMPLING_FIELDS, get_preset

    values = base.model_dump()
    for axis, value in zip(axes, coords, strict=True):
        if axis.name == "preset":
            preset_values = get_preset(str(value)).values
            values.update({k: preset_values[k] for k in SAMPLING_FIELDS if k in preset_values})
    for axis, value in zip(axes, coords, strict=True):
        if axis.name != "preset":
            values[axis.name] = value
    values["seed"] = seed
    try:
        return GenerationSettings.build(**values)
    except SettingsError as exc:
        where = ", ".join(a.label(v) for a, v in zip(axes, coords, strict=True))
        raise SettingsError(
            [SettingIssue(i.field, Text(f"[{where}] ", f"[{where}] ") + i.text) for i in exc.issues]
        ) from None


@dataclass
class CellResult:
    """A generated cell: its text, how it ended, and its measures."""

    cell: Cell
    text: str
    finished: Finished
    measures: Measures
    notices: list[Text] = field(default_factory=list)
    history_id: int | None = None

    def to_dict(self, axes: Sequence[Axis]) -> dict[str, Any]:
        return {
            "cell": self.cell.index,
            "vary": {a.name: v for a, v in zip(axes, self.cell.coords, strict=True)},
            "settings": self.cell.settings.model_dump(),
            "seed": self.finished.seed,
            "text": self.text,
            "finish_reason": self.finished.finish_reason,
            "measures": self.measures.to_dict(),
            "notices": [n.get() for n in self.notices],
            "history_id": self.history_id,
        }


#: Progress: cells finished, cells in all, tokens of the running cell.
ProgressCallback = Callable[[int, int, int], None]


def run_grid(
    engine: Engine,
    prompt: str,
    cells: Sequence[Cell],
    cancel: threading.Event | None = None,
    *,
    on_cell: Callable[[CellResult], None] | None = None,
    on_progress: ProgressCallback | None = None,
) -> list[CellResult]:
    """Generate every cell through the engine's normal stream, one after another, and measure it.

    Stop (`cancel`) ends the running cell; the cells finished before it are returned, the cut one is not.
    Fluency is scored on the local model when there is one (None on a remote engine).
    """
    try:
        source: LogitsSource | None = logits_source(engine)
    except InvalidInputError:
        source = None
    prompt_ids = encode(source, prompt) if source is not None else []
    results: list[CellResult] = []
    for cell in cells:
        if cancel is not None and cancel.is_set():
            break
        finished: Finished | None = None
        notices: list[Text] = []
        tokens = 0
        for event in engine.stream(prompt, cell.settings, cancel):
            if isinstance(event, TokenEvent):
                tokens += 1
                if on_progress is not None:
                    on_progress(len(results), len(cells), tokens)
            elif isinstance(event, Notice):
                notices.append(event.text)
            elif isinstance(event, Finished):
                finished = event
        if finished is None or finished.finish_reason == "cancelled":
            break  # a cell cut short by Stop is not a result: its figures would mislead
        generated = [t.token_id for t in finished.tokens[0] if t.token_id >= 0] if finished.tokens else []
        used_prompt = prompt_ids[finished.prompt_truncated_tokens :]
        result = CellResult(
            cell=cell,
            text=finished.text,
            finished=finished,
            measures=measure(source, finished.text, used_prompt, generated, finished.timings.tokens_per_second),
            notices=notices,
        )
        results.append(result)
        if on_cell is not None:
            on_cell(result)
        if on_progress is not None:
            on_progress(len(results), len(cells), 0)
    return results


# -- history: a grid is stored as one group of generations ---------------------------------------


def save_grid(store: Any, prompt: str, results: Sequence[CellResult], engine: Engine) -> str:
    """Store every finished cell as a generation of one new group; returns the group id.

    `store` is a gptdesk.history.HistoryStore (typed loosely so the lab does not import history at load).
    """
    group_id = uuid.uuid4().hex[:12]
    for result in results:
        gen_id = store.begin(
            prompt,
            result.cell.settings,
            seed=result.finished.seed,
            info=engine.info,
            kind="explore",
            group_id=group_id,
        )
        store.finish(gen_id, result.finished)
        result.history_id = gen_id
    return group_id


def grid_from_group(store: Any, group_id: str) -> tuple[str, list[Axis], list[Cell]]:
    """The prompt, axes and cells of a stored grid, to run it again: same settings, same seed, same texts."""
    records = store.find_group(group_id)
    if not records:
        raise InvalidInputError(
            Text(
                f"No explorer grid '{group_id}' in the history. See the group ids with `gptdesk explore --list`.",
                f"В истории нет сетки «{group_id}». Номера групп: `gptdesk explore --list`.",
            )
        )
    settings = [r.reproduce_settings() for r in records]
    dumped = [s.model_dump() for s in settings]
    axes: list[Axis] = []
    for name in VARIABLE:
        if name == "preset":
            continue
        values = list(dict.fromkeys(d[name] for d in dumped))
        if len(values) > 1:
            axes.append(Axis(name, tuple(values)))
    cells = []
    for index, s in enumerate(settings):
        coords = tuple(s.model_dump()[a.name] for a in axes)
        cells.append(Cell(index, coords, s))
    return records[0].prompt, axes, cells
