"""The parameter lab in the window: next-token view, settings explorer, suggested settings."""
