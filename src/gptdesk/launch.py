"""The `gptdesk` command's first moment: Ctrl+C is taken over before anything else is imported.

Importing this module installs the handler, on purpose: the console script and `python -m gptdesk`
import it first, and every import before it (argparse, pydantic, torch…) is a window in which
Ctrl+C would print a traceback and end the process with a signal instead of status 130.
"""

import contextlib
import os
import signal


def _interrupted(signum: int, frame: object) -> None:
    text = "Interrupted."
    # The handler may run in the middle of importing i18n itself: then the message stays English.
    with contextlib.suppress(BaseException):
        from gptdesk.i18n import current_language

        if current_language() == "ru":
            text = "Прервано."
    with contextlib.suppress(OSError):
        os.write(2, ("\n" + text + "\n").encode("utf-8", "backslashreplace"))
    os._exit(130)


signal.signal(signal.SIGINT, _interrupted)


def main() -> int:
    """The console script's entry point: the CLI, with Ctrl+C already handled."""
    from gptdesk.cli import main as cli_main

    return cli_main()
