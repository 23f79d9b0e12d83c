"""The parameters panel: presets and every generation setting, explained, validated as you type."""

from __future__ import annotations

import html
from typing import Any

import annotated_types
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from gptdesk.errors import SettingIssue, SettingsError
from gptdesk.i18n import Text
from gptdesk.settings.escapes import decode_escapes
from gptdesk.settings.generation import GenerationSettings
from gptdesk.settings.help import FIELD_HELP
from gptdesk.settings.presets import DEFAULT_PRESET, PRESETS, Preset

#: Fields in the order they are shown, with the kind of editor each gets.
FIELDS: tuple[tuple[str, str], ...] = (
    ("do_sample", "bool"),
    ("temperature", "float"),
    ("top_k", "int"),
    ("top_p", "float"),
    ("num_beams", "int"),
    ("num_return_sequences", "int"),
    ("repetition_penalty", "float"),
    ("no_repeat_ngram_size", "int"),
    ("length_penalty", "float"),
    ("early_stopping", "choice"),
    ("max_new_tokens", "optional"),
    ("max_length", "optional"),
    ("min_new_tokens", "optional"),
    ("min_length", "optional"),
    ("seed", "seed"),
    ("stop", "stop"),
    ("bad_words", "words"),
)
SAMPLING_KNOBS = ("temperature", "top_k", "top_p")
_STEPS = {"temperature": 0.05, "top_p": 0.01, "repetition_penalty": 0.05}

_NO_SAMPLING = Text(
    "Has no effect now: random sampling is off, so the model always takes the most likely token. "
    "Turn on “Random sampling” to use it.",
    "Сейчас ни на что не влияет: случайный выбор выключен, и модель всегда берёт самый вероятный "
    "токен. Включите «Случайный выбор», чтобы им пользоваться.",
)
_SHADOWED = {
    "max_length": (
        "max_new_tokens",
        Text(
            "Has no effect now: max_new_tokens is set and limits the length instead. Set max_new_tokens "
            "to “unset” to use this.",
            "Сейчас ни на что не влияет: задан max_new_tokens, и длину ограничивает он. Сбросьте "
            "max_new_tokens, чтобы пользоваться этим.",
        ),
    ),
    "min_length": (
        "min_new_tokens",
        Text(
            "Has no effect now: min_new_tokens is set and sets the minimum instead. Set min_new_tokens "
            "to “unset” to use this.",
            "Сейчас ни на что не влияет: задан min_new_tokens, и минимум задаёт он. Сбросьте "
            "min_new_tokens, чтобы пользоваться этим.",
        ),
    ),
}
_UNSET = Text("unset", "не задано")
_STOP_HINT = Text(
    "One stop string per line, with escapes as in the CLI's --stop: \\n for a line break, \\t for a tab, "
    "\\\\ for a backslash, \\xHH or \\uHHHH for any character.",
    "По одной стоп-строке на строку, escape-последовательности как в --stop командной строки: \\n — перевод "
    "строки, \\t — табуляция, \\\\ — обратная косая черта, \\xHH или \\uHHHH — любой символ.",
)
_SEED_PLACEHOLDER = Text("random", "случайное")


def _bounds(name: str) -> tuple[float, float]:
    low: float = 0
    high: float = 0
    for item in GenerationSettings.model_fields[name].metadata:
        if isinstance(item, annotated_types.Ge | annotated_types.Gt):
            low = float(item.ge if isinstance(item, annotated_types.Ge) else item.gt)  # type: ignore[arg-type]
        if isinstance(item, annotated_types.Le | annotated_types.Lt):
            high = float(item.le if isinstance(item, annotated_types.Le) else item.lt)  # type: ignore[arg-type]
    return low, high


def unescape(text: str) -> str:
    """A stop-string line as typed, with its escapes decoded as the CLI's --stop decodes them
    (\\n, \\t, \\xHH, \\uHHHH, …; Cyrillic as is). A malformed escape raises ValueError naming it."""
    return decode_escapes(text)


def escape(text: str) -> str:
    """The line that unescape() turns back into `text`: backslashes and control characters escaped."""
    out: list[str] = []
    for ch in text:
        if ch in _ESCAPED:
            out.append(_ESCAPED[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


_ESCAPED = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


_WORDS_HINT = Text(
    "One word or phrase per line, exactly as it is written (no escapes).",
    "По одному слову или фразе на строку, ровно как они пишутся (без escape-последовательностей).",
)


def _stop_lines(text: str) -> tuple[list[str], SettingIssue | None]:
    """The editor's non-empty lines decoded, and the issue of the first malformed one (kept as typed)."""
    lines: list[str] = []
    issue: SettingIssue | None = None
    for line in text.split("\n"):
        try:
            lines.append(unescape(line))
        except ValueError as exc:
            lines.append(line)
            if issue is None:
                issue = SettingIssue(
                    "stop",
                    Text(
                        f"stop: the line '{line}' has a malformed escape '{exc}'. Write \\n for a line break, "
                        "\\t for a tab, \\\\ for a backslash, \\xHH with two hex digits or \\uHHHH with four.",
                        f"stop: в строке '{line}' неправильная escape-последовательность '{exc}'. Пишите \\n для "
                        "перевода строки, \\t для табуляции, \\\\ для обратной косой черты, \\xHH с двумя "
                        "шестнадцатеричными цифрами или \\uHHHH с четырьмя.",
                    ),
                )
    return [line for line in lines if line], issue


class ParametersPanel(QWidget):
    """The preset list and one editor per GenerationSettings field, with live validation.

    Signals:
        settings_changed(object): the values changed; the argument is the valid
            GenerationSettings, or None while they are invalid.
    """

    settings_changed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._editors: dict[str, QWidget] = {}
        self._labels: dict[str, QLabel] = {}
        self._applying = False
        self._settings: GenerationSettings | None = None
        self._issues: list[SettingIssue] = []
        self._warnings: list[SettingIssue] = []

        layout = QVBoxLayout(self)
        self.preset_label = QLabel()
        self.preset_combo = QComboBox()
        self.preset_combo.setObjectName("preset")
        self.preset_label.setBuddy(self.preset_combo)
        for preset in PRESETS.values():
            self.preset_combo.addItem("", preset.id)
        self.preset_combo.addItem("", None)  # "Custom": shown when the values match no preset
        self.preset_combo.activated.connect(self._on_preset_activated)
        layout.addWidget(self.preset_label)
        layout.addWidget(self.preset_combo)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for name, kind in FIELDS:
            editor = self._make_editor(name, kind)
            editor.setObjectName(name)
            label = QLabel()
            label.setBuddy(editor)
            self._editors[name] = editor
            self._labels[name] = label
            form.addRow(label, editor)
        layout.addLayout(form)

        self.issues_label = QLabel()
        self.issues_label.setObjectName("issues")
        self.issues_label.setWordWrap(True)
        self.issues_label.setTextFormat(Qt.TextFormat.RichText)
        self.issues_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.issues_label.hide()
        layout.addWidget(self.issues_label)

        self.estimate_title = QLabel()
        self.estimate_label = QLabel()
        self.estimate_label.setObjectName("estimate")
        self.estimate_label.setWordWrap(True)
        self.estimate_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.estimate_title)
        layout.addWidget(self.estimate_label)
        layout.addStretch(1)
        self.setStyleSheet('*[invalid="true"] { border: 2px solid #c0392b; }QLabel#issues { padding: 4px; }')

        # The model's defaults first, for the knobs no preset sets (length_penalty's is 1.0, not 0).
        self.set_values(GenerationSettings().model_dump())
        self.apply_preset(DEFAULT_PRESET)
        self.retranslate()

    # -- editors ---------------------------------------------------------------------------------

    def _make_editor(self, name: str, kind: str) -> QWidget:
        editor: QWidget
        if kind == "bool":
            box = QCheckBox()
            box.toggled.connect(self._on_value_changed)
            editor = box
        elif kind == "float":
            low, high = _bounds(name)
            spin = QDoubleSpinBox()
            spin.setDecimals(2)
            spin.setRange(low, high)
            spin.setSingleStep(_STEPS.get(name, 0.1))
            spin.setKeyboardTracking(True)
            spin.valueChanged.connect(self._on_value_changed)
            editor = spin
        elif kind in ("int", "optional"):
            low, high = _bounds(name)
            ispin = QSpinBox()
            # Optional lengths: 0 shows as "unset" (for the minimums 0 and unset mean the same).
            ispin.setRange(0 if kind == "optional" else int(low), int(high))
            ispin.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToNearestValue)
            ispin.valueChanged.connect(self._on_value_changed)
            editor = ispin
        elif kind == "choice":  # early_stopping: false, true or "never", as generate() takes them
            combo = QComboBox()
            for value in (False, True, "never"):
                combo.addItem(str(value).lower(), value)
            combo.currentIndexChanged.connect(self._on_value_changed)
            editor = combo
        elif kind == "seed":
            line = QLineEdit()
            line.setClearButtonEnabled(True)
            line.textChanged.connect(self._on_value_changed)
            editor = line
        else:  # stop strings
            text = QPlainTextEdit()
            text.setTabChangesFocus(True)
            text.setFixedHeight(text.fontMetrics().lineSpacing() * 3 + 12)
            text.textChanged.connect(self._on_value_changed)
            editor = text
        return editor

    def editor(self, name: str) -> QWidget:
        return self._editors[name]

    def values(self) -> dict[str, Any]:
        """The editors' values as GenerationSettings keywords (invalid ones passed through as typed)."""
        values: dict[str, Any] = {}
        for name, kind in FIELDS:
            editor = self._editors[name]
            if isinstance(editor, QCheckBox):
                values[name] = editor.isChecked()
            elif isinstance(editor, QComboBox):
                values[name] = editor.currentData()
            elif isinstance(editor, QDoubleSpinBox):
                values[name] = round(editor.value(), editor.decimals())
            elif isinstance(editor, QSpinBox):
                value = editor.value()
                values[name] = None if kind == "optional" and value == 0 else value
            elif isinstance(editor, QLineEdit):
                text = editor.text().strip()
                values[name] = text or None  # the settings model parses it and names a bad value
            elif isinstance(editor, QPlainTextEdit) and kind == "words":  # one banned word or phrase per line
                values[name] = [line for line in editor.toPlainText().split("\n") if line.strip()]
            elif isinstance(editor, QPlainTextEdit):
                values[name], _ = _stop_lines(editor.toPlainText())
        return values

    def set_values(self, values: dict[str, Any]) -> None:
        """Show these settings (missing keys keep their current value)."""
        self._applying = True
        try:
            for name, kind in FIELDS:
                if name not in values:
                    continue
                value = values[name]
                editor = self._editors[name]
                if isinstance(editor, QCheckBox):
                    editor.setChecked(bool(value))
                elif isinstance(editor, QComboBox):
                    editor.setCurrentIndex(max(0, editor.findData(value)))
                elif isinstance(editor, QDoubleSpinBox):
                    editor.setValue(float(value))
                elif isinstance(editor, QSpinBox):
                    editor.setValue(0 if value is None else int(value))
                elif isinstance(editor, QLineEdit):
                    editor.setText("" if value is None else str(value))
                elif isinstance(editor, QPlainTextEdit) and kind == "words":
                    editor.setPlainText("\n".join(value or []))
                elif isinstance(editor, QPlainTextEdit):
                    editor.setPlainText("\n".join(escape(s) for s in (value or [])))
        finally:
            self._applying = False
        self._on_value_changed()

    def set_settings(self, settings: GenerationSettings | dict[str, Any]) -> None:
        values = settings.model_dump() if isinstance(settings, GenerationSettings) else dict(settings)
        self.set_values(values)

    def apply_preset(self, preset_id: str) -> None:
        preset = PRESETS[preset_id]
        self.set_values(dict(preset.values))
        self.preset_combo.setCurrentIndex(self.preset_combo.findData(preset.id))

    def settings(self) -> GenerationSettings:
        """The current settings; raises SettingsError (with every issue) while they are invalid."""
        values = self.values()
        editor = self._editors["stop"]
        _, malformed = _stop_lines(editor.toPlainText()) if isinstance(editor, QPlainTextEdit) else ([], None)
        try:
            built = GenerationSettings.build(**values)
        except SettingsError as exc:
            raise SettingsError([*exc.issues, *([malformed] if malformed else [])]) from None
        if malformed is not None:
            raise SettingsError([malformed])
        return built

    @property
    def current(self) -> GenerationSettings | None:
        return self._settings

    @property
    def issues(self) -> list[SettingIssue]:
        return list(self._issues)

    @property
    def warnings(self) -> list[SettingIssue]:
        return list(self._warnings)

    # -- reacting --------------------------------------------------------------------------------

    def _on_preset_activated(self, index: int) -> None:
        preset_id = self.preset_combo.itemData(index)
        if preset_id is not None:
            self.apply_preset(str(preset_id))

    def _on_value_changed(self, *_: object) -> None:
        if self._applying:
            return
        self._validate()
        self._update_enabled()
        self._sync_preset()
        self._show_issues()
        self.settings_changed.emit(self._settings)

    def _validate(self) -> None:
        try:
            self._settings = self.settings()
            self._issues = []
            disabled = {name for name in self._editors if not self._is_active(name)}
            self._warnings = [w for w in self._settings.warnings() if w.field not in disabled]
        except SettingsError as exc:
            self._settings = None
            self._issues = exc.issues
            self._warnings = []
        bad = {issue.field for issue in self._issues}
        for name, editor in self._editors.items():
            invalid = name in bad
            if bool(editor.property("invalid")) != invalid:
                editor.setProperty("invalid", invalid)
                editor.style().unpolish(editor)
                editor.style().polish(editor)

    def _is_active(self, name: str) -> bool:
        values = self.values()
        if name in SAMPLING_KNOBS:
            return bool(values["do_sample"])
        if name in _SHADOWED:
            return values[_SHADOWED[name][0]] is None
        return True

    def _update_enabled(self) -> None:
        for name in (*SAMPLING_KNOBS, *_SHADOWED):
            editor = self._editors[name]
            active = self._is_active(name) or editor.property("invalid") is True
            editor.setEnabled(active)
            self._labels[name].setEnabled(active)
            self._set_tooltip(name)

    def _sync_preset(self) -> None:
        values = self.values()
        current = self.preset_combo.currentData()
        matches = [p for p in PRESETS.values() if _matches(p, values)]
        if current is not None and any(p.id == current for p in matches):
            return
        target = matches[0].id if matches else None
        self.preset_combo.setCurrentIndex(self.preset_combo.findData(target))

    def _show_issues(self) -> None:
        rows = [("#c0392b", "✖", issue) for issue in self._issues] + [("#9a6700", "⚠", w) for w in self._warnings]
        if not rows:
            self.issues_label.hide()
            self.issues_label.setAccessibleDescription("")
            return
        parts = [
            f'<p style="color:{color}; margin:2px 0">{mark} {html.escape(issue.text.get())}</p>'
            for color, mark, issue in rows
        ]
        self.issues_label.setText("".join(parts))
        self.issues_label.setAccessibleDescription(" ".join(issue.text.get() for _, _, issue in rows))
        self.issues_label.show()

    def set_estimate(self, text: str, ok: bool) -> None:
        """Show the cost estimate; `ok` False marks a generation the machine cannot afford."""
        self.estimate_label.setText(text)
        self.estimate_label.setStyleSheet("" if ok else "color: #c0392b;")
        self.estimate_label.setAccessibleDescription(text)

    # -- language --------------------------------------------------------------------------------

    def _set_tooltip(self, name: str) -> None:
        help_ = FIELD_HELP[name]
        body = html.escape(help_.help.get())
        hint = ""
        if name in SAMPLING_KNOBS and not self._is_active(name):
            hint = f"<p><i>{html.escape(_NO_SAMPLING.get())}</i></p>"
        elif name in _SHADOWED and not self._is_active(name):
            hint = f"<p><i>{html.escape(_SHADOWED[name][1].get())}</i></p>"
        if name == "stop":
            body += "<br>" + html.escape(_STOP_HINT.get())
        elif name == "bad_words":
            body += "<br>" + html.escape(_WORDS_HINT.get())
        tip = f"<qt><b>{html.escape(help_.label.get())}</b> (<code>{name}</code>){hint}<p>{body}</p></qt>"
        for widget in (self._editors[name], self._labels[name]):
            widget.setToolTip(tip)
        editor = self._editors[name]
        editor.setAccessibleName(help_.label.get())
        plain_hint = ""
        if hint:
            plain_hint = (_NO_SAMPLING if name in SAMPLING_KNOBS else _SHADOWED[name][1]).get() + " "
        editor.setAccessibleDescription(plain_hint + help_.help.get())

    def retranslate(self) -> None:
        self.preset_label.setText(self.tr("&Preset:"))
        for index in range(self.preset_combo.count()):
            preset_id = self.preset_combo.itemData(index)
            if preset_id is None:
                self.preset_combo.setItemText(index, self.tr("Custom"))
                self.preset_combo.setItemData(index, self.tr("Your own values"), Qt.ItemDataRole.ToolTipRole)
            else:
                preset = PRESETS[str(preset_id)]
                self.preset_combo.setItemText(index, preset.name.get())
                self.preset_combo.setItemData(index, preset.when.get(), Qt.ItemDataRole.ToolTipRole)
        self.preset_combo.setAccessibleName(self.tr("Preset"))
        current = self.preset_combo.currentData()
        self.preset_combo.setToolTip(
            PRESETS[str(current)].when.get() if current is not None else self.tr("Your own values")
        )
        for name, kind in FIELDS:
            self._labels[name].setText(FIELD_HELP[name].label.get() + ":")
            editor = self._editors[name]
            if isinstance(editor, QSpinBox) and kind == "optional":
                editor.setSpecialValueText(_UNSET.get())
            if isinstance(editor, QLineEdit):
                editor.setPlaceholderText(_SEED_PLACEHOLDER.get())
            self._set_tooltip(name)
        self.estimate_title.setText(self.tr("Estimated cost:"))
        self._show_issues()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


def _matches(preset: Preset, values: dict[str, Any]) -> bool:
    for key, value in preset.values.items():
        current = values.get(key)
        if isinstance(value, float) and isinstance(current, int | float):
            if abs(current - value) > 1e-9:
                return False
        elif current != value:
            return False
    return True
