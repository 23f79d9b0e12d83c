"""The one-folder build's entry point: the same `gptdesk` command as the installed package's script."""

import multiprocessing
import sys

from gptdesk.cli.main import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # torch and tokenizers may start helper processes
    sys.exit(main())
