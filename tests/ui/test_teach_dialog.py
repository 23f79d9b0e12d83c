"""Tools › Teach the model my texts…: a real tuning run on a tiny model in the dialog, Stop, bad files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gptdesk.models.adapters import adapters_for
from gptdesk.ui.teach_dialog import TeachDialog
from tests.ui.conftest import SCREENSHOTS

SOURCE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ru_literature" / "prose" / "Chekhov"


def _text(tmp_path: Path, chars: int = 10_000) -> Path:
    path = tmp_path / "chekhov.txt"
    path.write_text((SOURCE / "Дама с собачкой.txt").read_text(encoding="utf-8")[:chars], encoding="utf-8")
    return path


def test_teaching_shows_the_loss_the_gain_and_both_texts(qtbot: Any, tiny_model_dir: Path, tmp_path: Path) -> None:
    dialog = TeachDialog(str(tiny_model_dir), "Он сказал")
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.start_button.isEnabled()  # no text chosen yet
    dialog.add_files([_text(tmp_path)])
    assert dialog.name_edit.text() == "chekhov" and dialog.start_button.isEnabled()
    dialog.minutes.setValue(0.1)
    assert dialog.start()
    assert dialog.stop_button.isEnabled() and not dialog.start_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.running, timeout=240_000)
    outcome = dialog.outcome
    assert outcome is not None and outcome.result.adapter is not None, dialog.status_label.text()
    r = outcome.result
    assert "Held-out bits per character" in dialog.result_label.text()
    assert f"{r.bpc_before:.4f} before" in dialog.result_label.text()
    # The chart drew the training loss of every step it was told of.
    xs, ys = dialog.train_curve.getData()
    assert xs is not None and len(xs) >= 1 and all(y > 0 for y in ys)
    assert dialog.without_text.toPlainText() and dialog.with_text.toPlainText()
    assert [a.manifest.name for a in adapters_for(str(tiny_model_dir))] == ["chekhov"]
    SCREENSHOTS.mkdir(exist_ok=True)
    assert dialog.grab().save(str(SCREENSHOTS / "teach-dialog.png"))
    with qtbot.waitSignal(dialog.adapter_ready) as used:
        dialog.use_button.click()
    assert used.args == ["chekhov"]


def test_a_file_that_is_not_utf8_is_named_with_the_fix(qtbot: Any, tmp_path: Path) -> None:
    bad = tmp_path / "win.txt"
    bad.write_bytes("Привет, мир.\n".encode("cp1251") * 2000)
    dialog = TeachDialog(None)
    qtbot.addWidget(dialog)
    dialog.add_files([bad])
    assert dialog.start()
    qtbot.waitUntil(lambda: not dialog.running, timeout=60_000)
    shown = dialog.status_label.text()
    assert str(bad) in shown and "iconv -f cp1251 -t utf-8" in shown
    assert dialog.start_button.isEnabled() and not dialog.use_button.isEnabled()


def test_stop_keeps_what_was_learnt_for_a_resume(qtbot: Any, tiny_model_dir: Path, tmp_path: Path) -> None:
    dialog = TeachDialog(str(tiny_model_dir))
    qtbot.addWidget(dialog)
    dialog.add_files([_text(tmp_path, 20_000)])
    dialog.minutes.setValue(5.0)

    def stop_once_training(_progress: object) -> None:
        if dialog.steps:
            dialog.stop()

    dialog._relay.progress.connect(stop_once_training)
    assert dialog.start()
    qtbot.waitUntil(lambda: not dialog.running, timeout=240_000)
    assert dialog.outcome is not None and dialog.outcome.result.stopped
    assert "--resume" in dialog.status_label.text() and not dialog.use_button.isEnabled()


def test_the_tools_menu_opens_it_on_the_loaded_model(qtbot: Any, make_window: Any) -> None:
    window = make_window(lang="ru")
    window.act_teach.trigger()
    dialog = window.teach_dialog
    assert dialog.isVisible() and dialog.model is None  # no model loaded: the embedded one
    assert dialog.windowTitle() == "Обучить модель на моих текстах — GPT Desk"
    assert dialog.start_button.text() == "&Обучить"
    dialog.close()


def test_closing_during_a_run_does_not_wait_for_the_step(qtbot: Any, tiny_model_dir: Path, tmp_path: Path) -> None:
    import time

    from PySide6.QtCore import Qt

    dialog = TeachDialog(str(tiny_model_dir))
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    dialog.add_files([_text(tmp_path, 20_000)])
    dialog.minutes.setValue(5.0)
    gone: list[bool] = []
    dialog.destroyed.connect(lambda: gone.append(True))
    assert dialog.start()
    qtbot.waitUntil(lambda: bool(dialog.steps), timeout=120_000)
    started = time.perf_counter()
    dialog.close()
    assert time.perf_counter() - started < 0.5  # the GUI thread did not wait for the worker
    assert not dialog.isVisible()
    qtbot.waitUntil(lambda: bool(gone), timeout=120_000)  # deleted once the run stopped after its step


def test_closing_the_window_stops_a_run_and_waits_for_it(qtbot: Any, make_window: Any, tmp_path: Path) -> None:
    window = make_window()
    window.act_teach.trigger()
    dialog = window.teach_dialog
    dialog.add_files([_text(tmp_path, 20_000)])
    dialog.minutes.setValue(5.0)
    assert dialog.start()
    qtbot.waitUntil(lambda: bool(dialog.steps), timeout=180_000)
    thread = dialog._thread
    window.close()
    assert thread.isFinished()  # no worker outlives the window
