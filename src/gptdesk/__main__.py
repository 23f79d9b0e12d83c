"""`python -m gptdesk`: the same as the `gptdesk` command."""

from gptdesk.cli.launch import main  # first: it takes over Ctrl+C before the heavy imports

raise SystemExit(main())
