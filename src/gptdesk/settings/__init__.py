"""Generation settings, their help texts, checks and presets."""
