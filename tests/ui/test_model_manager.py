"""The model manager dialog driven like a user: list, download with progress, cancel, resume, delete, use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QEvent, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox

from gptdesk.errors import DiskSpaceError, DownloadCancelled
from gptdesk.i18n import set_language
from gptdesk.models.hub.download import pull
from gptdesk.models.hub.progress import DownloadProgress
from gptdesk.models.hub.settings import RetryPolicy
from gptdesk.models.locate import find_local
from gptdesk.ui.model_manager import ModelManagerDialog
from tests.models.hub_server import FakeHub, point_at

REPO_ID = "ai-forever/rugpt3large_based_on_gpt2"


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """English messages whatever an earlier test left set (`main(["--lang", "ru", …])` sets it for the process)."""
    from gptdesk.i18n import set_language

    set_language("en")
    yield
    set_language(None)


@pytest.fixture
def hub(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with FakeHub() as server:
        point_at(server, monkeypatch, tmp_path / "hub")
        server.add_repo(REPO_ID, tiny_model_dir)
        yield server


def _dialog(qtbot: Any, **options: Any) -> ModelManagerDialog:
    dialog = ModelManagerDialog(**options)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def _cell(dialog: ModelManagerDialog, name: str, column: str) -> str:
    from gptdesk.ui.model_manager import _COL

    item = dialog.table.item(dialog.row_index(name), _COL[column])
    assert item is not None
    return item.text()


def test_the_dialog_lists_models_with_memory_and_uses_the_embedded_one(qtbot: Any, tmp_path: Path) -> None:
    dialog = _dialog(qtbot)
    assert dialog.table.rowCount() >= 5
    large = dialog.rows()[dialog.row_index("rugpt3large")]
    for dtype in ("float32", "bfloat16", "q8_0"):
        text = _cell(dialog, "rugpt3large", f"ram_{dtype}")
        assert text.endswith("✓" if large.fits[dtype] else "✗") and "GB" in text
    assert _cell(dialog, "rugpt3large", "status") == "not downloaded"
    assert _cell(dialog, "rugpt3large", "licence").startswith("MIT")
    assert "memory available now" in dialog.machine_label.text()

    dialog.select("rugpt3large")
    assert dialog.download_button.isEnabled() and not dialog.use_button.isEnabled()
    assert not dialog.delete_button.isEnabled() and not dialog.cancel_button.isEnabled()

    set_language("ru")
    try:
        QApplication.sendEvent(dialog, QEvent(QEvent.Type.LanguageChange))
        header = dialog.table.horizontalHeaderItem(0)
        assert header is not None and header.text() == "Модель"
        assert dialog.download_button.text() == "Скачать"
        assert _cell(dialog, "rugpt3large", "status") == "не скачана"
    finally:
        set_language(None)
        QApplication.sendEvent(dialog, QEvent(QEvent.Type.LanguageChange))

    dialog.select("embedded")
    assert dialog.use_button.isEnabled() and not dialog.delete_button.isEnabled()
    with qtbot.waitSignal(dialog.model_chosen, timeout=2000) as chosen:
        qtbot.mouseClick(dialog.use_button, _left())
    assert chosen.args == ["embedded"]
    assert dialog.result() == QDialog.DialogCode.Accepted


def _left() -> Any:
    from PySide6.QtCore import Qt

    return Qt.MouseButton.LeftButton


def test_download_in_the_window_with_a_progress_bar_then_use_and_generate(
    qtbot: Any, hub: FakeHub, tiny_model_dir: Path
) -> None:
    from gptdesk.engine import TokenEvent
    from gptdesk.engine.hf import TransformersEngine
    from gptdesk.settings.presets import get_preset

    hub.faults.throttle["model.safetensors"] = 8_000_000  # slow enough to see the bar move
    dialog = _dialog(qtbot)
    dialog.select("rugpt3large")
    assert dialog.download_button.text() == "Download"
    values: list[int] = []
    seen: list[DownloadProgress] = []
    dialog.download_progress.connect(lambda p: (seen.append(p), values.append(dialog.progress_bar.value())))
    with qtbot.waitSignal(dialog.download_finished, timeout=60_000) as done:
        qtbot.mouseClick(dialog.download_button, _left())
        assert dialog.downloading == REPO_ID
        assert dialog.cancel_button.isEnabled() and not dialog.download_button.isEnabled()
        assert _cell(dialog, "rugpt3large", "status") == "downloading…"
    name, path = done.args
    assert name == REPO_ID and Path(path) == find_local("rugpt3large")
    assert values == sorted(values) and values[-1] == 1000 and len(set(values)) > 3
    assert any("model.safetensors" in p.text().en and "%" in p.text().en for p in seen)
    assert dialog.progress_bar.value() == 1000
    assert _cell(dialog, "rugpt3large", "status") == "downloaded"
    assert "downloaded and checked" in dialog.message_label.text()

    assert dialog.selected() is not None and dialog.selected().id == REPO_ID  # type: ignore[union-attr]
    with qtbot.waitSignal(dialog.model_chosen, timeout=2000) as chosen:
        qtbot.mouseClick(dialog.use_button, _left())
    # The window loads what the dialog chose, by the same path as any model.
    with TransformersEngine.load(chosen.args[0], device="cpu", dtype="float32") as engine:
        settings = get_preset("greedy").settings(max_new_tokens=5)
        tokens = [e for e in engine.stream("Жили-были", settings) if isinstance(e, TokenEvent)]
    assert len(tokens) == 5


def test_cancel_keeps_the_partial_download_and_resume_finishes_it(qtbot: Any, hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.throttle["model.safetensors"] = 1_000_000
    dialog = _dialog(qtbot)
    dialog.select("rugpt3large")
    seen: list[DownloadProgress] = []
    dialog.download_progress.connect(seen.append)
    qtbot.mouseClick(dialog.download_button, _left())
    qtbot.waitUntil(
        lambda: any(p.filename == "model.safetensors" and p.file_done > 300_000 for p in seen), timeout=30_000
    )
    with qtbot.waitSignal(dialog.download_failed, timeout=10_000) as failed:
        qtbot.mouseClick(dialog.cancel_button, _left())
    assert isinstance(failed.args[0], DownloadCancelled)
    assert "cancelled" in dialog.message_label.text() and "resume" in dialog.message_label.text()
    assert dialog.downloading is None
    assert _cell(dialog, "rugpt3large", "status").startswith("partly downloaded")
    assert dialog.download_button.text() == "Resume download" and dialog.download_button.isEnabled()
    assert find_local("rugpt3large") is None
    assert not (tmp_path / "hub" / "models--ai-forever--rugpt3large_based_on_gpt2" / "refs").exists()

    hub.faults.throttle.clear()
    with qtbot.waitSignal(dialog.download_finished, timeout=60_000):
        qtbot.mouseClick(dialog.download_button, _left())
    ranges = [r.headers.get("range") for r in hub.requests("GET", "/blobs/")]
    assert ranges[0] is None and ranges[-1] is not None and ranges[-1].startswith("bytes=")
    assert int(ranges[-1].removeprefix("bytes=").rstrip("-")) > 300_000
    assert _cell(dialog, "rugpt3large", "status") == "downloaded"


def test_open_folder_and_delete(qtbot: Any, hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    snap = pull("rugpt3large")
    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", staticmethod(lambda url: opened.append(url) or True))
    asked: list[str] = []

    def answer(*args: Any, **kwargs: Any) -> QMessageBox.StandardButton:
        asked.append(str(args[2]))
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", staticmethod(answer))
    dialog = _dialog(qtbot)
    dialog.select("rugpt3large")
    assert _cell(dialog, "rugpt3large", "status") == "downloaded"
    assert dialog.delete_button.isEnabled() and dialog.use_button.isEnabled() and not dialog.download_button.isEnabled()
    qtbot.mouseClick(dialog.open_button, _left())
    assert [u.toLocalFile() for u in opened] == [str(snap)]
    qtbot.mouseClick(dialog.delete_button, _left())
    assert asked and REPO_ID in asked[0]
    assert "Deleted" in dialog.message_label.text() and "freed" in dialog.message_label.text()
    assert _cell(dialog, "rugpt3large", "status") == "not downloaded"
    assert find_local("rugpt3large") is None and not snap.exists()


def test_disk_space_and_network_errors_are_shown_in_the_dialog(
    qtbot: Any, hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    dialog = _dialog(qtbot, free_space=lambda path: 1000)
    assert "1.0 kB free" in dialog.machine_label.text()
    dialog.repo_edit.setText(REPO_ID)
    with qtbot.waitSignal(dialog.download_failed, timeout=10_000) as failed:
        qtbot.mouseClick(dialog.add_button, _left())
    assert isinstance(failed.args[0], DiskSpaceError)
    assert "Not enough disk space" in dialog.message_label.text() and "needs" in dialog.message_label.text()
    assert dialog.add_button.isEnabled() and not dialog.cancel_button.isEnabled()

    other = _dialog(qtbot, retry=RetryPolicy(attempts=1))
    other.endpoint_edit.setText("http://127.0.0.1:9")
    other.select("rugpt3large")
    with qtbot.waitSignal(other.download_failed, timeout=10_000):
        qtbot.mouseClick(other.download_button, _left())
    assert "Cannot reach the model hub" in other.message_label.text()
    assert "ruslit-tiny" in other.message_label.text()


def test_closing_during_a_download_stops_it(qtbot: Any, hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.throttle["model.safetensors"] = 500_000
    dialog = _dialog(qtbot)
    seen: list[DownloadProgress] = []
    dialog.download_progress.connect(seen.append)
    assert dialog.start_download("rugpt3large")
    assert not dialog.start_download("rugpt3medium")  # one at a time
    qtbot.waitUntil(lambda: any(p.filename == "model.safetensors" and p.file_done > 0 for p in seen), timeout=30_000)
    dialog.close()
    assert dialog._thread is None or dialog._thread.isFinished()
    assert find_local("rugpt3large") is None
    partial = list((tmp_path / "hub" / "models--ai-forever--rugpt3large_based_on_gpt2" / "blobs").glob("*.incomplete"))
    assert len(partial) == 1 and partial[0].stat().st_size > 0


def test_adapters_are_listed_under_their_model(qtbot: Any, tmp_path: Path) -> None:
    from gptdesk.models.adapters import AdapterManifest, install, remove_adapter

    staging = tmp_path / "stage"
    staging.mkdir()
    (staging / "adapter_model.safetensors").write_bytes(b"not read by the list")
    (staging / "adapter_config.json").write_text("{}")
    manifest = AdapterManifest(
        "pushkin",
        "embedded",
        "",
        8,
        16.0,
        ["c_attn"],
        "0" * 64,
        1,
        1,
        ["onegin.txt"],
        1,
        1,
        1.0,
        2.5,
        2.2,
        "2026-12-06T00:00:00+00:00",
    )
    install(staging, manifest)
    dialog = _dialog(qtbot)
    assert _cell(dialog, "embedded", "adapters") == "pushkin"
    assert _cell(dialog, "rugpt3large", "adapters") == "—"
    from gptdesk.ui.model_manager import _COL

    tip = dialog.table.item(dialog.row_index("embedded"), _COL["adapters"]).toolTip()
    assert "taught on onegin.txt" in tip and "2.500 → 2.200" in tip
    remove_adapter("pushkin")
    dialog.refresh()
    assert _cell(dialog, "embedded", "adapters") == "—"
