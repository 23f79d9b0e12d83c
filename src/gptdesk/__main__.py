"""`python -m gptdesk`: the same as the `gptdesk` command."""

from gptdesk.cli import main

raise SystemExit(main())
