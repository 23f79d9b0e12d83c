"""Measuring models: perplexity, the speed bench and the quality bench."""
