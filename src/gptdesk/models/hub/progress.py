"""Where a download stands: the progress records, the speed meter and the sizes and durations they show."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from gptdesk.i18n import Text
from gptdesk.models.cost import format_bytes
from gptdesk.models.hub.plan import DownloadPlan

#: Progress callbacks are called at most this often (besides the start and end of each file).
PROGRESS_INTERVAL_S = 0.1
#: Speed is averaged over this many seconds, so one slow or fast second does not swing the ETA.
SPEED_WINDOW_S = 5.0
MIN_SPEED_SPAN_S = 1.0

Phase = Literal["check", "download", "verify", "retry", "done"]


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
            "done": Size(self.done_bytes),
            "total": Size(self.total_bytes),
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
                head = head + Text(", {s}/s", ", {s:ru}/с").format(s=Size(self.speed))
            if self.eta is not None and self.speed:
                head = head + Text(", {t} left", ", осталось {t:ru}").format(t=Duration(self.eta))
        if self.note is not None:
            head = head + Text(" — ", " — ") + self.note
        return head


ProgressFn = Callable[[DownloadProgress], None]


class Meter:
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


class Size:
    def __init__(self, n: float) -> None:
        self.n = n

    def __format__(self, spec: str) -> str:
        return format_bytes(self.n, "ru" if spec == "ru" else "en")


class Duration:
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
    return format(Duration(seconds), "ru" if lang == "ru" else "")
