"""Choosing models: progress while loading, a failed load keeps the previous model, remote servers."""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QDialog, QFileDialog

from gptdesk.engine.base import Engine
from gptdesk.i18n import Text
from gptdesk.ui.model_picker import RemoteDialog
from tests.ui.fake_engine import FakeEngine


def _generate_ok(qtbot: Any, window: Any) -> None:
    window.params.set_values({"do_sample": False, "max_new_tokens": 3})
    window.prompt_edit.setPlainText("Ещё работает")
    with qtbot.waitSignal(window.generation_finished, timeout=10_000) as blocker:
        assert window.generate()
    assert blocker.args[0].text


def test_loading_shows_progress_and_replaces_the_model(qtbot: Any, make_window: Any) -> None:
    old = FakeEngine(model_id="old-model")
    window = make_window(old)
    release = threading.Event()
    new = FakeEngine(model_id="new-model")

    def load(progress: Any) -> Engine:
        progress(Text("Reading the weights", "Чтение весов"), 0.4)
        release.wait(10)
        return new

    assert window.loader.load_engine(load, kind="folder", key="/models/new", label="new")
    qtbot.waitUntil(lambda: window.load_progress.value() == 40, timeout=5000)
    assert window.load_progress.isVisible()
    assert "Reading the weights" in window.load_progress.format()
    assert not window.generate_button.isEnabled()  # no generating while the model changes
    assert not window.model_picker.isEnabled()
    with qtbot.waitSignal(window.model_loaded, timeout=10_000):
        release.set()
    assert window.engine is new
    assert old.closed and not new.closed
    assert not window.load_progress.isVisible()
    assert window.status_labels["model"].text() == "Model: new-model"
    assert window.model_picker.combo.currentText() == "new"
    _generate_ok(qtbot, window)


def test_a_failed_folder_load_shows_the_error_and_keeps_the_previous_model(
    qtbot: Any, make_window: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    previous = FakeEngine(model_id="previous-model")
    window = make_window(previous)
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(empty))
    with qtbot.waitSignal(window.model_failed, timeout=120_000):
        window.model_picker.request("folder")
    message = window.message_bar.text
    assert message.startswith("Could not load not-a-model: ")
    assert f"{empty} is not a model folder: it has no config.json" in message
    assert message.endswith("The previous model (previous-model) is still in use.")
    assert window.message_bar.level == "error"
    assert window.engine is previous and not previous.closed
    assert window.model_picker.combo.currentText().startswith("previous-model") or window.model_picker.isEnabled()
    _generate_ok(qtbot, window)


def test_a_catalog_model_that_is_not_here_fails_offline(qtbot: Any, make_window: Any) -> None:
    window = make_window(FakeEngine(model_id="previous-model"))
    with qtbot.waitSignal(window.model_failed, timeout=120_000):
        window.model_picker.request("catalog", "ai-forever/rugpt3small_based_on_gpt2")
    assert window.message_bar.text.startswith("Could not load ai-forever/rugpt3small_based_on_gpt2: ")
    assert window.engine is not None and window.engine.info.model_id == "previous-model"


def test_remote_server_entry_asks_and_connects_through_the_remote_engine(
    qtbot: Any, make_window: Any, monkeypatch: Any
) -> None:
    calls: list[tuple[str, Any, Any]] = []
    served = FakeEngine(model_id="served-model")
    served.name = "remote"

    class RemoteEngine:
        @staticmethod
        def connect(
            base_url: str, *, model: str | None = None, api_key: str | None = None, timeout: float = 60.0
        ) -> FakeEngine:
            calls.append((base_url, model, api_key))
            return served

    module = types.ModuleType("gptdesk.engine.remote.engine")
    module.RemoteEngine = RemoteEngine  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gptdesk.engine.remote.engine", module)

    def fill_and_accept(dialog: RemoteDialog) -> int:
        dialog.url.setText("http://127.0.0.1:8765/v1")
        dialog.model.setText("rugpt3large")
        dialog.api_key.setText("secret")
        return QDialog.DialogCode.Accepted.value

    monkeypatch.setattr(RemoteDialog, "exec", fill_and_accept)
    window = make_window(FakeEngine())
    with qtbot.waitSignal(window.model_loaded, timeout=10_000):
        window.model_picker.request("remote")
    assert calls == [("http://127.0.0.1:8765/v1", "rugpt3large", "secret")]
    assert window.engine is served
    assert "runs on the server" in window.params.estimate_label.text()
    assert window.model_picker.combo.currentText() == "rugpt3large @ http://127.0.0.1:8765/v1"
    _generate_ok(qtbot, window)


def test_an_unreachable_remote_server_keeps_the_previous_model(qtbot: Any, make_window: Any) -> None:
    window = make_window(FakeEngine(model_id="previous-model"))
    with qtbot.waitSignal(window.model_failed, timeout=60_000):
        window.connect_remote("http://127.0.0.1:9/v1", None, None)  # port 9 (discard): nothing listens
    assert window.message_bar.text.startswith("Could not load ")
    assert window.message_bar.text.endswith("The previous model (previous-model) is still in use.")
    assert window.engine is not None and window.engine.info.model_id == "previous-model"


def test_remote_dialog_needs_an_http_url(qtbot: Any) -> None:
    from PySide6.QtWidgets import QDialogButtonBox

    dialog = RemoteDialog()
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    dialog.url.setText("ftp://example")
    assert not ok.isEnabled() and "http://" in ok.toolTip()
    dialog.url.setText("https://example.org/v1")
    assert ok.isEnabled()
    assert dialog.api_key.echoMode() == dialog.api_key.EchoMode.Password
    assert dialog.values() == ("https://example.org/v1", None, None)


def test_the_picker_says_which_catalog_models_are_here(qtbot: Any, make_window: Any) -> None:
    window = make_window(FakeEngine())
    with qtbot.waitSignal(window.model_picker.combo.model().dataChanged, timeout=60_000, raising=False):
        window.loader.scan()
    qtbot.waitUntil(lambda: "…" not in window.model_picker.combo.itemText(1), timeout=60_000)
    texts = [window.model_picker.combo.itemText(i) for i in range(window.model_picker.combo.count())]
    assert texts[0].endswith("— works offline")
    assert any("ruGPT-3 Large" in t and "download 3.0 GB" in t for t in texts)  # nothing cached in the test
    assert "Open folder…" in texts and "Remote server…" in texts


def test_the_model_manager_opens_from_the_menu_and_its_choice_loads(
    qtbot: Any, make_window: Any, monkeypatch: Any
) -> None:
    window = make_window(FakeEngine(model_id="old-model"))
    chosen: list[str | None] = []
    monkeypatch.setattr(window.loader, "load_model", lambda name, **kw: chosen.append(name) or True)
    assert window.act_manage_models in window.file_menu.actions()
    window.act_manage_models.trigger()
    dialog = window.loader.model_manager
    qtbot.waitUntil(dialog.isVisible, timeout=5000)
    dialog.select("embedded")
    dialog.use_button.click()
    assert chosen == ["embedded"]
