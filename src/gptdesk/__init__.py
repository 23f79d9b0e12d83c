"""GPT Desk: a desktop workbench for GPT-2-family language models, Russian first."""

__version__ = "0.1.0"
