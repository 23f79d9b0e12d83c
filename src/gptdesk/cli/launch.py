"""The `gptdesk` command's first moment: Ctrl+C is taken over before anything else is imported.

Importing this module installs the handler, on purpose: the console script and `python -m gptdesk`
import it first, and every import before it (argparse, pydantic, torch…) is a window in which
Ctrl+C would print a traceback and end the process with a signal instead of status 130. It imports
only what the interpreter has already loaded, for the same reason.
"""

# Not `signal` or `contextlib`: they import enum and functools, slow enough to be interrupted.
import _signal  # type: ignore[import-not-found]
import os


def _interrupted(signum: int, frame: object) -> None:
    text = "Interrupted."
    try:
        from gptdesk.i18n import current_language

        if current_language() == "ru":
            text = "Прервано."
    except BaseException:  # the handler may run in the middle of importing i18n: stay English
        pass
    try:  # noqa: SIM105 - contextlib is not loaded yet (see above)
        os.write(2, ("\n" + text + "\n").encode("utf-8", "backslashreplace"))
    except OSError:  # nowhere to say it: the status still says it
        pass
    os._exit(130)


_signal.signal(_signal.SIGINT, _interrupted)


def main() -> int:
    """The console script's entry point: the CLI, with Ctrl+C already handled."""
    from gptdesk.cli.main import main as cli_main

    return cli_main()
