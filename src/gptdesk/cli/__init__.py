"""Command-line faces: the parser and one module per command group."""
