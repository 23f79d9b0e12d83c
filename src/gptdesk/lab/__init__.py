"""The parameter lab: next-token view, settings explorer, measures and advice (no Qt here; see design.md)."""
