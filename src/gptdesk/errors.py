"""Typed errors of the core; each face (window, CLI, server) turns them into its own form."""

from __future__ import annotations

from collections.abc import Sequence

from gptdesk.i18n import Lang, Text


class GptDeskError(Exception):
    """Base class: a message in Russian and English that names the value and the fix."""

    #: CLI exit status for this kind of failure.
    exit_code = 1
    #: HTTP status for the server face.
    http_status = 500
    #: OpenAI-style error type.
    error_type = "server_error"

    def __init__(self, text: Text) -> None:
        super().__init__(text.en)
        self.text = text

    def message(self, lang: Lang | None = None) -> str:
        return self.text.get(lang)

    def __str__(self) -> str:
        return self.text.get()


class InvalidInputError(GptDeskError):
    """The user's input cannot be used as given (bad prompt, bad settings, bad name)."""

    exit_code = 2
    http_status = 400
    error_type = "invalid_request_error"


class EmptyPromptError(InvalidInputError):
    pass


class SettingsError(InvalidInputError):
    """One or more generation settings are invalid; `issues` lists each with its fix."""

    def __init__(self, issues: Sequence[SettingIssue]) -> None:
        self.issues = list(issues)
        joined = Text(
            "\n".join(i.text.en for i in self.issues),
            "\n".join(i.text.ru for i in self.issues),
        )
        super().__init__(joined)


class SettingIssue:
    """One problem (or warning) with one setting."""

    __slots__ = ("field", "level", "text")

    def __init__(self, field: str, text: Text, level: str = "error") -> None:
        self.field = field
        self.text = text
        self.level = level  # "error" or "warning"

    def __repr__(self) -> str:
        return f"SettingIssue({self.field!r}, {self.level!r}, {self.text.en!r})"


class ModelError(GptDeskError):
    """A model cannot be found, read or used."""

    exit_code = 3
    http_status = 404
    error_type = "invalid_request_error"


class ModelNotFoundError(ModelError):
    pass


class ModelNotDownloadedError(ModelNotFoundError):
    """A hub model that is not on this computer yet (models.obtain pulls it when allowed)."""


class ModelCorruptError(ModelError):
    http_status = 500
    error_type = "server_error"


class UnsupportedModelError(ModelError):
    http_status = 400


class NetworkError(ModelError):
    """The network (the hub) was needed and could not be reached."""

    http_status = 503


class DownloadCancelled(ModelError):
    """The user cancelled a download; verified files and the partial file stay for the next try."""

    exit_code = 130


class ConversionCancelled(ModelError):
    """The user cancelled a GGUF conversion; nothing was left in the cache."""


class DiskSpaceError(GptDeskError):
    """The cache's disk has no room for the download (checked before it starts, or hit while writing)."""

    exit_code = 4
    http_status = 507
    error_type = "insufficient_resources"


class InsufficientMemoryError(GptDeskError):
    """The estimate says the machine cannot afford this; the message suggests what to change."""

    exit_code = 4
    http_status = 507
    error_type = "insufficient_resources"


class EngineError(GptDeskError):
    """The engine failed in a way the user did not cause (a bug or a library fault)."""

    exit_code = 1


class CacheFolderError(ModelError):
    """GPT Desk's cache folder (GPTDESK_CACHE_DIR or the user cache) cannot hold a converted model."""

    http_status = 500
    error_type = "server_error"

    def __init__(self, text: Text, folder: str) -> None:
        super().__init__(text)
        self.folder = folder


class DamagedWeightsError(ModelCorruptError):
    """A model's weights hold NaN values: the file is well formed but its numbers are not."""

    def __init__(self, folder: object, tensor: str) -> None:
        super().__init__(
            Text(
                f"The model's weights are damaged (NaN): tensor '{tensor}' in {folder} holds NaN values, so "
                "every output would be garbage. Download or copy the model again, or retrain it.",
                f"Веса модели повреждены (NaN): тензор «{tensor}» в {folder} содержит значения NaN, и любой "
                "вывод был бы мусором. Скачайте или скопируйте модель заново либо обучите её снова.",
            )
        )
        self.tensor = tensor


class OutputError(GptDeskError):
    """The CLI's output cannot be written: a full disk, an encoding that cannot hold the text."""

    exit_code = 5


class OutputClosedError(OutputError):
    """The reader of the output went away (`gptdesk … | head`): the CLI stops quietly."""

    # 128 + SIGPIPE: what a shell reports for `cat` or `yes` that a closed pipe ended, so
    # `set -o pipefail` scripts see the usual code.
    exit_code = 141


class AdapterError(ModelError):
    """A LoRA adapter cannot be found, read or used."""


class AdapterNotFoundError(AdapterError):
    pass


class DamagedAdapterError(AdapterError):
    """An adapter's files are missing or unreadable (a damaged manifest, a truncated weights file)."""

    http_status = 500
    error_type = "server_error"


class AdapterMismatchError(AdapterError):
    """The adapter was made for another base model than the one it is applied to."""

    http_status = 400


class TuneCancelled(GptDeskError):
    """The user stopped a tuning run before its first checkpoint: nothing to resume from."""

    exit_code = 130
